"""Person analysis with MediaPipe (0.10.21, whose models ship inside the wheel): selfie
segmentation for the person mask, BlazePose (Bazarevsky et al., 2020) for the 33 body
landmarks, and BlazeFace for face boxes. From them come the masks try-on and splicing need:
the upper-body garment region and the clothing-agnostic person (that region greyed out,
face, hair, arms' skin outside it and background kept).

Photos that cannot be used (no person, several persons, a body cut by the frame, a person
turned sideways or with the torso behind the arms) return a status and a reason, never an
exception.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from enum import Enum

import cv2
import numpy as np

POSE_LANDMARKS = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST, L_HIP, R_HIP = (
    11, 12, 13, 14, 15, 16, 23, 24,
)  # fmt: skip
AGNOSTIC_GREY = 128
# Canvases BlazePose is tried on, in turn, until it finds a person: the photo itself, then the
# photo with grey added (top, bottom, each side) as shares of its height and width.
POSE_RETRY_CANVASES = ((0.0, 0.0, 0.0), (0.1, 0.6, 0.3), (0.0, 1.0, 0.5))


class PersonStatus(Enum):
    OK = "ok"
    NO_PERSON = "no_person"
    MULTIPLE_PERSONS = "multiple_persons"
    CROPPED_BODY = "cropped_body"
    # A person the try-on geometry cannot dress: turned away from the camera, or with the
    # torso hidden behind the arms.
    FACING_SIDEWAYS = "facing_sideways"
    TORSO_OCCLUDED = "torso_occluded"


# Statuses of a person who was found but whom the try-on cannot dress believably.
UNSUPPORTED_POSES = (PersonStatus.FACING_SIDEWAYS, PersonStatus.TORSO_OCCLUDED)


@dataclass
class PersonAnalysis:
    """What one photo yields. Boxes are (x_min, y_min, x_max, y_max) in [0, 1]; keypoints
    are (33, 4): x, y (normalised), z, visibility. Masks are uint8 0/255, photo-sized."""

    status: PersonStatus
    reason: str
    width: int
    height: int
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    face_box: tuple[float, float, float, float] | None = None
    upper_body_box: tuple[float, float, float, float] | None = None
    person_mask: np.ndarray | None = None
    upper_body_mask: np.ndarray | None = None
    agnostic: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.status is PersonStatus.OK


@dataclass(frozen=True)
class AnalysisThresholds:
    mask_threshold: float = 0.5
    min_person_fraction: float = 0.02
    min_visibility: float = 0.5
    face_confidence: float = 0.6
    # Least share of the shoulder-to-hip span that must be inside the photo.
    min_torso_visible: float = 0.35
    # Most the shoulders may turn from the camera (degrees, from BlazePose's depths, which are
    # noisy: 1-45 degrees over variants of one near-frontal photo, 59-71 for a man in
    # profile), and the most of the torso the forearms may cover.
    max_turn_degrees: float = 52.0
    max_torso_occluded: float = 0.3


DEFAULT_THRESHOLDS = AnalysisThresholds()


# OpenCV's remap (SHRT_MAX): a longer side aborts the process.
MEDIAPIPE_MAX_SIDE = 32_767


class PersonAnalyzer:
    """MediaPipe graphs are not thread-safe: one analyzer serialises its calls; run several
    analyzers for parallelism."""

    def __init__(self, thresholds: AnalysisThresholds = DEFAULT_THRESHOLDS) -> None:
        import mediapipe as mp

        self.thresholds = thresholds
        self._segmenter = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        # model_complexity=1 is the only pose model inside the wheel (0 and 2 download).
        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)
        self._faces = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=thresholds.face_confidence
        )
        self._lock = threading.Lock()

    def analyze(self, rgb: np.ndarray) -> PersonAnalysis:
        """Analyses an RGB uint8 photo (H, W, 3)."""
        rgb = np.ascontiguousarray(rgb)  # MediaPipe refuses views (crops, flips)
        height, width = rgb.shape[:2]
        if max(height, width) >= MEDIAPIPE_MAX_SIDE:
            # OpenCV inside MediaPipe aborts the whole process on such a side, past any
            # Python handler (images from a request never get here: decode_image bounds them).
            raise ValueError(
                f"a {width}x{height} image: MediaPipe takes sides under {MEDIAPIPE_MAX_SIDE:,} pixels"
            )
        with self._lock:
            soft_mask = self._segmenter.process(rgb).segmentation_mask
            keypoints = self._keypoints(rgb)
            faces = self._faces.process(rgb).detections or []
        t = self.thresholds
        person_mask = np.where(soft_mask > t.mask_threshold, 255, 0).astype(np.uint8)
        face_boxes = [_face_box(d) for d in faces]
        person_share = float((person_mask > 0).mean())
        # Several faces say several people whether or not BlazePose made out a body (it
        # often makes out none when two overlap).
        if len(face_boxes) > 1 and person_share >= t.min_person_fraction:
            face_box = _face_of_pose(face_boxes, keypoints) if keypoints is not None else None
            return PersonAnalysis(
                PersonStatus.MULTIPLE_PERSONS,
                f"{len(face_boxes)} faces found; send a photo of one person",
                width, height, keypoints if keypoints is not None else np.zeros((0, 4), np.float32),
                face_box,
            )  # fmt: skip
        if keypoints is None and face_boxes and person_share >= t.min_person_fraction:
            # (The person mask alone proves nothing: the segmenter takes a cat for a person.)
            return PersonAnalysis(
                PersonStatus.NO_PERSON,
                "a face was found but not the body below it; send a photo of one person "
                "facing the camera, upper body in view",
                width, height, face_box=face_boxes[0],
            )  # fmt: skip
        if keypoints is None or person_share < t.min_person_fraction:
            return PersonAnalysis(
                PersonStatus.NO_PERSON, "no person found in the photo", width, height
            )
        face_box = _face_of_pose(face_boxes, keypoints)
        problem = _cropped(keypoints, t)
        if problem:
            return PersonAnalysis(
                PersonStatus.CROPPED_BODY, problem, width, height, keypoints, face_box
            )
        pose_problem = _pose_problem(keypoints, width, height, t)
        if pose_problem is not None:
            return PersonAnalysis(pose_problem[0], pose_problem[1], width, height, keypoints,
                                  face_box)  # fmt: skip
        upper = upper_body_mask(person_mask, keypoints, face_box)
        return PersonAnalysis(
            PersonStatus.OK, "", width, height, keypoints, face_box,
            upper_body_box=_mask_box(upper),
            person_mask=person_mask,
            upper_body_mask=upper,
            agnostic=clothing_agnostic(rgb, upper),
        )  # fmt: skip

    def _keypoints(self, rgb: np.ndarray) -> np.ndarray | None:
        """BlazePose's 33 landmarks (x, y, z, visibility; x and y in [0, 1] of ``rgb``), or
        None. BlazePose finds its person with a detector trained on whole bodies, and it
        misses upper-body photos (a tilt, a tight crop) it could then track: when it finds
        nobody, the photo is tried again on a larger grey canvas with room below it, where the
        body seems to go on, and the landmarks are mapped back to the photo."""
        height, width = rgb.shape[:2]
        for top, bottom, side in POSE_RETRY_CANVASES:
            pad_top, pad_bottom, pad_side = (
                int(height * top),
                int(height * bottom),
                int(width * side),
            )
            canvas = rgb if not (pad_top or pad_bottom or pad_side) else cv2.copyMakeBorder(
                rgb, pad_top, pad_bottom, pad_side, pad_side, cv2.BORDER_CONSTANT,
                value=(AGNOSTIC_GREY,) * 3,
            )  # fmt: skip
            pose = self._pose.process(canvas).pose_landmarks
            if pose is None:
                continue
            points = np.array([(p.x, p.y, p.z, p.visibility) for p in pose.landmark], np.float32)
            points[:, 0] = (points[:, 0] * canvas.shape[1] - pad_side) / width
            points[:, 1] = (points[:, 1] * canvas.shape[0] - pad_top) / height
            return points
        return None

    def close(self) -> None:
        for graph in (self._segmenter, self._pose, self._faces):
            graph.close()


def _face_box(detection: object) -> tuple[float, float, float, float]:
    box = detection.location_data.relative_bounding_box  # type: ignore[attr-defined]
    return (
        max(0.0, box.xmin),
        max(0.0, box.ymin),
        min(1.0, box.xmin + box.width),
        min(1.0, box.ymin + box.height),
    )


def _face_of_pose(
    boxes: list[tuple[float, float, float, float]], keypoints: np.ndarray
) -> tuple[float, float, float, float] | None:
    """The face box around the pose's nose (the pose tracks one person)."""
    nose_x, nose_y = keypoints[0, 0], keypoints[0, 1]
    for box in boxes:
        if box[0] <= nose_x <= box[2] and box[1] <= nose_y <= box[3]:
            return box
    return boxes[0] if boxes else None


def _inside(point: np.ndarray) -> bool:
    return 0.0 <= point[0] <= 1.0 and 0.0 <= point[1] <= 1.0


def _cropped(keypoints: np.ndarray, t: AnalysisThresholds) -> str:
    """Why the upper body is not usable for try-on, or "" when it is."""
    for index, side in ((L_SHOULDER, "left"), (R_SHOULDER, "right")):
        point = keypoints[index]
        if point[3] < t.min_visibility or not _inside(point):
            return f"the {side} shoulder is not in the photo; the whole upper body must be visible"
    shoulder_y = keypoints[[L_SHOULDER, R_SHOULDER], 1].mean()
    hip_y = keypoints[[L_HIP, R_HIP], 1].mean()
    span = hip_y - shoulder_y
    if span <= 0:
        return "the body is upside down or lying; send an upright photo"
    visible = (min(hip_y, 1.0) - shoulder_y) / span
    if visible < t.min_torso_visible:
        return f"only {visible:.0%} of the torso is in the photo; step back from the camera"
    return ""


def shoulder_turn(keypoints: np.ndarray) -> float:
    """How far (degrees) the shoulders are turned from the camera: from the difference of
    BlazePose's depths of the two shoulders against their distance across the photo (its z
    has roughly the scale of x)."""
    across = abs(float(keypoints[L_SHOULDER, 0] - keypoints[R_SHOULDER, 0]))
    depth = abs(float(keypoints[L_SHOULDER, 2] - keypoints[R_SHOULDER, 2]))
    return float(np.degrees(np.arctan2(depth, across)))


def torso_occlusion(keypoints: np.ndarray, width: int, height: int, min_visibility: float) -> float:
    """The share of the torso (the shoulder-hip quadrilateral) that the forearms BlazePose
    sees cover (each a band from elbow to wrist, a quarter of the shoulder span wide)."""
    shoulders = _pixels(keypoints, [L_SHOULDER, R_SHOULDER], width, height)
    hips = _pixels(keypoints, [L_HIP, R_HIP], width, height)
    torso = np.zeros((height, width), np.uint8)
    cv2.fillPoly(torso, [np.array([shoulders[0], shoulders[1], hips[1], hips[0]], np.int32)], 255)
    area = int((torso > 0).sum())
    if area == 0:
        return 0.0
    span = float(np.linalg.norm(shoulders[0] - shoulders[1]))
    forearms = np.zeros_like(torso)
    for elbow, wrist in ((L_ELBOW, L_WRIST), (R_ELBOW, R_WRIST)):
        if min(keypoints[elbow, 3], keypoints[wrist, 3]) < min_visibility:
            continue
        a, b = _pixels(keypoints, [elbow, wrist], width, height)
        cv2.line(forearms, tuple(int(v) for v in a), tuple(int(v) for v in b), 255,
                 max(2, int(0.25 * span)))  # fmt: skip
    return float(((torso > 0) & (forearms > 0)).sum() / area)


def _pose_problem(
    keypoints: np.ndarray, width: int, height: int, t: AnalysisThresholds
) -> tuple[PersonStatus, str] | None:
    """Whether the person stands so that the garment cannot be fitted believably, and what
    the shopper can do about it."""
    turn = shoulder_turn(keypoints)
    if turn > t.max_turn_degrees:
        return PersonStatus.FACING_SIDEWAYS, (
            f"you are turned {turn:.0f} degrees from the camera; face the camera with both "
            "shoulders in view"
        )
    covered = torso_occlusion(keypoints, width, height, t.min_visibility)
    if covered > t.max_torso_occluded:
        return PersonStatus.TORSO_OCCLUDED, (
            f"your arms cover {covered:.0%} of your upper body; keep your arms at your sides"
        )
    return None


def _pixels(keypoints: np.ndarray, indices: list[int], width: int, height: int) -> np.ndarray:
    return np.stack([keypoints[indices, 0] * width, keypoints[indices, 1] * height], axis=1)


def upper_body_mask(
    person_mask: np.ndarray,
    keypoints: np.ndarray,
    face_box: tuple[float, float, float, float] | None,
) -> np.ndarray:
    """Where an upper-body garment is worn: the torso between shoulders and hips widened a
    little, and the upper arms, restricted to the person and never over the face."""
    height, width = person_mask.shape
    shoulders = _pixels(keypoints, [L_SHOULDER, R_SHOULDER], width, height)
    hips = _pixels(keypoints, [L_HIP, R_HIP], width, height)
    shoulder_width = float(np.linalg.norm(shoulders[0] - shoulders[1]))
    centre_x = shoulders[:, 0].mean()
    widen = 0.18 * shoulder_width
    region = np.zeros_like(person_mask)
    # Torso: shoulders pushed outwards and slightly up, hips pushed outwards.
    sign = np.sign(shoulders[:, 0] - centre_x)[:, None]
    top = shoulders + np.hstack([sign * widen, np.full((2, 1), -0.12 * shoulder_width)])
    bottom = hips + np.hstack([np.sign(hips[:, 0] - centre_x)[:, None] * widen, np.zeros((2, 1))])
    polygon = np.array([top[0], top[1], bottom[1], bottom[0]], dtype=np.int32)
    cv2.fillConvexPoly(region, polygon, 255)
    # Sleeves: shoulder -> elbow capsules (short sleeves and longer both start here).
    thickness = max(2, int(0.32 * shoulder_width))
    for shoulder, elbow in ((L_SHOULDER, L_ELBOW), (R_SHOULDER, R_ELBOW)):
        a, b = _pixels(keypoints, [shoulder, elbow], width, height)
        cv2.line(region, tuple(int(v) for v in a), tuple(int(v) for v in b), 255, thickness)
    dilated_person = cv2.dilate(person_mask, np.ones((5, 5), np.uint8))
    region = np.where(dilated_person > 0, region, 0).astype(np.uint8)
    if face_box is not None:
        x0, y0, x1, y1 = face_box
        region[
            int(y0 * height) : int(np.ceil(y1 * height)), int(x0 * width) : int(np.ceil(x1 * width))
        ] = 0
    return region


def clothing_agnostic(rgb: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The photo with the garment region (slightly grown, so no old garment edge leaks)
    replaced by neutral grey: what the try-on generator conditions on."""
    grown = cv2.dilate(region, np.ones((7, 7), np.uint8))
    agnostic = rgb.copy()
    agnostic[grown > 0] = AGNOSTIC_GREY
    return agnostic


def _mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    height, width = mask.shape
    return (xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height)


class AnalyzerPool:
    """Up to ``size`` analyzers, created on first use and shared by threads (each MediaPipe
    graph serves one call at a time)."""

    def __init__(self, size: int = 2, thresholds: AnalysisThresholds = DEFAULT_THRESHOLDS) -> None:
        self.thresholds = thresholds
        self._idle: queue.Queue[PersonAnalyzer] = queue.Queue()
        self._budget = size
        self._lock = threading.Lock()

    def analyze(self, rgb: np.ndarray) -> PersonAnalysis:
        try:
            analyzer = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                create = self._budget > 0
                self._budget -= int(create)
            analyzer = PersonAnalyzer(self.thresholds) if create else self._idle.get()
        try:
            return analyzer.analyze(rgb)
        finally:
            self._idle.put(analyzer)

    def warm(self) -> None:
        """Makes one analyzer and runs it once, so that a service's first call after a start
        does not pay MediaPipe's (about 3 s on 2 cores): called before the service says it is
        ready."""
        with self._lock:
            create = self._budget > 0
            self._budget -= int(create)
        if create:
            analyzer = PersonAnalyzer(self.thresholds)
            analyzer.analyze(np.full((256, 192, 3), 128, np.uint8))
            self._idle.put(analyzer)

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()
