"""Render: pages, heatmaps, images and exports, written into an atomic report folder."""
