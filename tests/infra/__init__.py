"""testinfra checks of deployed hosts (see conftest.py for how hosts are chosen)."""
