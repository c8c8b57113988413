"""In-process memory transport and pipes."""

from .pipe import MemoryPipe, memory_pipe_pair
from .transport import MemoryListener, MemoryTransport

__all__ = ["MemoryListener", "MemoryPipe", "MemoryTransport", "memory_pipe_pair"]
