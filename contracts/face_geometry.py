"""The face-chip geometry a face model is trained and served on (the card's ``image.alignment``).

dlib's 5-point template on the unit face square (``get_face_chip_details``, 5-part branch): outer
and inner corner of the image-right eye, outer and inner corner of the image-left eye, nose base.
A chip of side S puts template point t at ``(padding + t) / (1 + 2·padding) · S`` (dlib's default
padding 0.25); ``serving/vision/align.py`` cuts it exactly as ``dlib.get_face_chip`` does.
"""

from __future__ import annotations

from contracts.card_sections import Alignment

DLIB_TEMPLATE_5: tuple[tuple[float, float], ...] = (
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
)
DLIB_CHIP_PADDING = 0.25


def dlib_alignment(chip_size: int, padding: float = DLIB_CHIP_PADDING) -> Alignment:
    """The ``image.alignment`` section for chips cut from dlib's 5 landmarks."""
    return Alignment(landmarks="dlib-5", template=list(DLIB_TEMPLATE_5), chip_size=chip_size, padding=padding)
