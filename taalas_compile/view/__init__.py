"""Seeing a chip in KLayout: the overview every compile writes, views cut from the masks, the
startup script that opens them, and the reference layers they draw on."""
