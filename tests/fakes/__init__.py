"""Fakes of the outside services the platform talks to, real enough to drive the real clients."""
