"""pyinfra inventories; `vast_api` holds the helpers behind `vast.py`."""
