"""Shared test configuration."""

import pytest

# Show full assertion details from the shipped contract suite.
pytest.register_assert_rewrite("relcrm.testing")
