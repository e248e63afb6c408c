"""Runs: chain the stages into a report, several reports, or a comparison."""
