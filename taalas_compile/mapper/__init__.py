"""Mapper: model IR + bit allocation -> tiles on die sites and nets between their pins (`Placement`),
then channel routes for the nets (`Routing`)."""
