"""Person detectors for the edge worker, and a registry to create one by name.

Plugins register a factory under a name with :func:`register_detector` (or by adding to
:data:`DETECTORS`); hall configs pick one with ``detector.kind``.

Example:
    >>> from edge.detectors import create_detector
    >>> det = create_detector("ssdlite_person", threads=1, score_threshold=0.6)
    >>> det.name
    'ssdlite_person'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge.detectors.base import Detector
from edge.detectors.detections import Detections
from edge.detectors.onnx_ssd import DEFAULT_MODEL_PATH, OnnxPersonDetector

__all__ = [
    "DEFAULT_MODEL_PATH",
    "DETECTORS",
    "Detections",
    "Detector",
    "OnnxPersonDetector",
    "create_detector",
    "register_detector",
]

#: Detector factories by name; each is called with the keyword arguments of
#: :func:`create_detector` (``model_path``, ``providers``, ``threads``, ``score_threshold``…).
DETECTORS: dict[str, Callable[..., Detector]] = {
    OnnxPersonDetector.name: OnnxPersonDetector,
}


def register_detector(kind: str, factory: Callable[..., Detector]) -> None:
    """Make ``factory`` available to :func:`create_detector` as ``kind``.

    Args:
        kind: Plugin name, as written in a hall config's ``detector.kind``.
        factory: Called with :func:`create_detector`'s keyword arguments; returns a
            :class:`Detector`.

    Raises:
        ValueError: If another factory is already registered under ``kind``.
    """
    existing = DETECTORS.get(kind)
    if existing is not None and existing is not factory:
        raise ValueError(f"detector kind {kind!r} is already registered ({existing!r})")
    DETECTORS[kind] = factory


def create_detector(kind: str = "ssdlite_person", **kwargs: Any) -> Detector:
    """Create the detector registered as ``kind``.

    Args:
        kind: Registered plugin name; ``"ssdlite_person"`` is the bundled SSDLite model.
        **kwargs: Passed to the plugin's factory, e.g. ``model_path``, ``providers``,
            ``threads``, ``score_threshold`` for :class:`OnnxPersonDetector`.

    Returns:
        The detector.

    Raises:
        ValueError: If no detector is registered as ``kind``.
        FileNotFoundError: If the plugin's model file is missing.
    """
    try:
        factory = DETECTORS[kind]
    except KeyError:
        known = ", ".join(sorted(DETECTORS))
        raise ValueError(f"unknown detector kind {kind!r} (known: {known})") from None
    return factory(**kwargs)
