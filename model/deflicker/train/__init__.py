"""Training the neural filter on still images: data, degradations, the training loop."""
