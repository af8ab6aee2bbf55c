"""This machine: its architectures, binfmt_misc registrations, what it can emulate, and ELF files."""
