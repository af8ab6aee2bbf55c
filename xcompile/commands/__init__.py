"""The commands beside `build`: doctor, trial, join, inspect, verify, matrix and `qemu --versions`."""
