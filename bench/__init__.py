"""motiongrid: benchmark harness for motion-cloning and motion-editing video diffusion."""
__version__ = "0.1.0"
