"""Commands a user runs against the whole fleet from the control machine.

`python -m fleet {up,down,stop,start,status}` (one module per command; the vast.ai side through
the official `vastai` SDK) and `python -m fleet.tunnel`.
"""
