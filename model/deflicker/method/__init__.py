"""The method: the pipeline's stages, from optical flow and the atlas to the filter, refinement and correction."""
