"""The settings: their keys, their cascade into a Config, and their command-line switches."""
