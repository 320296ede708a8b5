"""Backend: ROM images -> the two customisable masks (GDSII), the KLayout layer properties, and the
functional netlist."""
