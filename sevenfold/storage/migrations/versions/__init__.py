"""Migration scripts; a package so that installing the wheel ships them."""
