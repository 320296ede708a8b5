"""Physical model of the base die: geometry derived from `config.die.Die`."""
