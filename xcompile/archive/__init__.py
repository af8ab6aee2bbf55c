"""A Debian archive: its signed chain, indexes, .deb files, and the download cache."""
