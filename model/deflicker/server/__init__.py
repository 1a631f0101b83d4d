"""The model server the OFX plugin talks to, embedded in the host or in a child process."""
