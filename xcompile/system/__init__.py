"""The one way out to the OS: programs, their children, files, and the terminal."""
