"""Sign-off: read the masks back from disk, check design rules, extract ROM digits and nets,
compare them with the netlist, and run the emulator on what was extracted."""
