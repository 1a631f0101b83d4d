"""The synthetic benchmark clips: flickering clips with their clean originals and exact truth."""
