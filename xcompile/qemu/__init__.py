"""Step 1: the static qemu a run ships, where it comes from, and the machine that will run it."""
