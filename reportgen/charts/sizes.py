"""Sizes in px that charts of several kinds share, so that the panels of a page line up."""

WIDTH = 420
HEIGHT = 220
SMALL_PANEL = 170  # px: one panel of a chart faceted by layer and state
