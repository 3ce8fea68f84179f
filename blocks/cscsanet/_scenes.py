"""A procedural RGB-thermal street-scene generator with MFNet's nine classes (seed 002 data).

Seed 002 (CSC-SA-Net) trains on MFNet's RGB-thermal segmentation set (Ha et al., IROS 2017,
ref. [51]: 1569 aligned 480 x 640 pairs, day and night, nine classes), which cannot be
downloaded here. This generator keeps what the task depends on (../shared/specs/seed002.md
Sec. 8.2): the nine classes, the 50/50 day/night split and the complementarity of the two
modalities:

* hot classes (car engine and wheels, persons) stand out in thermal by day and by night;
* cold classes (curve, car stop, guardrail, colour cone, bump) take the temperature of what
  they lie on, so thermal is nearly blind to them;
* at night the RGB image is 8-30 times darker, noisier and has saturating glare, so RGB
  alone says little at night; retro-reflective parts (cone band, car stop) light up with
  probability 0.5.

Scene: a horizon, sky, building facades with windows, a road narrowing to a vanishing point,
sidewalks, lane dashes; objects stand on the ground plane, scaled with their distance below
the horizon, drawn far to near (occlusion). The thermal camera adds an ambient gradient,
a per-image gain/offset drift, warm unlabelled distractors (manholes, sun-heated patches,
lit windows), half-resolution optics, blur and noise.

Every scene comes from its own numpy generator seeded by (seed, index), so a split is the
same for any batch size; scene i is night when i is odd, so every split is exactly 50/50.
"""
from __future__ import annotations

import numpy as np

CLASSES = ("unlabelled", "car", "person", "bike", "curve", "car_stop", "guardrail", "color_cone", "bump")
#: the MFNet palette (MFNet-pytorch util.get_palette), class id -> RGB
PALETTE = ((0, 0, 0), (64, 0, 128), (64, 64, 0), (0, 128, 192), (0, 0, 192), (128, 128, 0),
           (64, 64, 128), (192, 128, 128), (192, 64, 0))
HOT = (1, 2)
COLD = (4, 5, 6, 7, 8)
#: bump this when the generator's output changes (it keys the per-process cache)
VERSION = 2


class _Canvas:
    """RGB (3, H, W), thermal (H, W) and labels (H, W) painted in place."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.yy = (self.yy + 0.5) / h
        self.xx = (self.xx + 0.5) / w
        self.rgb = np.zeros((3, h, w), np.float32)
        self.th = np.zeros((h, w), np.float32)
        self.label = np.zeros((h, w), np.uint8)
        self.retro = np.zeros((h, w), bool)        # retro-reflective pixels (light up at night)

    def paint(self, mask, rgb=None, th=None, th_delta=None, label=None, retro=False):
        if rgb is not None:
            self.rgb[:, mask] = np.asarray(rgb, np.float32)[:, None]
        if th is not None:
            self.th[mask] = th
        if th_delta is not None:          # cold objects: the temperature of what they cover
            self.th[mask] += th_delta
        if label is not None:
            self.label[mask] = label
        if retro:
            self.retro |= mask

    # shapes in normalised coordinates (x across the width, y down the height, both in [0, 1])
    def rect(self, x0, x1, y0, y1):
        return (self.xx >= x0) & (self.xx < x1) & (self.yy >= y0) & (self.yy < y1)

    def ellipse(self, cx, cy, rx, ry):
        return ((self.xx - cx) / max(rx, 1e-6)) ** 2 + ((self.yy - cy) / max(ry, 1e-6)) ** 2 <= 1.0

    def ring(self, cx, cy, r, width):
        d = np.sqrt(((self.xx - cx) * self.w) ** 2 + ((self.yy - cy) * self.h) ** 2) / self.h
        return np.abs(d - r) <= width

    def triangle(self, cx, y_base, half, height):
        t = (y_base - self.yy) / max(height, 1e-6)          # 0 at the base, 1 at the tip
        return (t >= 0) & (t <= 1) & (np.abs(self.xx - cx) <= half * (1 - t))

    def segment(self, x0, y0, x1, y1, width):
        px, py = self.xx * self.w, self.yy * self.h
        ax, ay, bx, by = x0 * self.w, y0 * self.h, x1 * self.w, y1 * self.h
        dx, dy = bx - ax, by - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
        return np.hypot(px - ax - t * dx, py - ay - t * dy) <= width * self.h


def _colour(rng, saturated=True):
    if saturated:
        c = rng.uniform(0.05, 0.35, 3)
        c[rng.integers(3)] = rng.uniform(0.6, 0.95)
        return c
    g = rng.uniform(0.25, 0.6)
    return np.clip(g + rng.normal(0, 0.04, 3), 0, 1)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return img
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(img, r, mode="edge")
    rows = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 1, pad)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 0, rows)


def render(h: int, w: int, seed: int, index: int, night: bool):
    """One scene: rgb float32 (3, H, W) in [0, 1], thermal float32 (H, W) in [0, 1],
    label uint8 (H, W) in 0..8."""
    rng = np.random.default_rng([int(seed), int(index)])
    c = _Canvas(h, w)
    yh = rng.uniform(0.35, 0.5)                               # horizon
    road_t, amb = (0.4, 0.36) if night else (0.56, 0.48)      # thermal: road, ambient objects
    # sky and facades
    sky = c.yy < yh
    top, bottom = (np.array([0.02, 0.03, 0.10]), np.array([0.05, 0.06, 0.15])) if night else \
        (np.array([0.35, 0.55, 0.90]), np.array([0.70, 0.80, 0.95]))
    frac = np.clip(c.yy / yh, 0, 1)[None]
    c.rgb[:] = np.where(sky[None], top[:, None, None] * (1 - frac) + bottom[:, None, None] * frac, 0)
    c.th[sky] = rng.uniform(0.08, 0.18)
    x = -0.05
    while x < 1.0:
        bw = rng.uniform(0.12, 0.3)
        top_y = yh - rng.uniform(0.08, 0.3)
        m = c.rect(x, x + bw, top_y, yh)
        c.paint(m, rgb=_colour(rng, saturated=False), th=amb + rng.uniform(-0.03, 0.03))
        for wy in np.arange(top_y + 0.03, yh - 0.03, 0.06):
            for wx in np.arange(x + 0.02, x + bw - 0.03, 0.05):
                lit = night and rng.random() < 0.3
                c.paint(c.rect(wx, wx + 0.025, wy, wy + 0.03),
                        rgb=(0.9, 0.8, 0.4) if lit else (0.15, 0.18, 0.22), th=amb + (0.1 if lit else 0.02))
        x += bw
    # ground: sidewalks, road, lane dashes
    ground = c.yy >= yh
    depth = np.clip((c.yy - yh) / (1 - yh), 0, 1)             # 0 at the horizon, 1 at the bottom
    vx = rng.uniform(0.4, 0.6)                                # vanishing point
    half = 0.03 + 0.55 * depth
    road = ground & (np.abs(c.xx - vx - (0.5 - vx) * depth) <= half)
    c.paint(ground & ~road, rgb=(0.55, 0.53, 0.5), th=road_t - 0.04)
    asphalt = 0.28 + 0.04 * rng.standard_normal((h, w)).astype(np.float32)
    c.rgb[:, road] = asphalt[road][None] * np.array([1.0, 1.0, 1.05], np.float32)[:, None]
    c.th[road] = road_t
    centre = vx + (0.5 - vx) * depth
    dashes = road & (np.abs(c.xx - centre) <= 0.004 + 0.01 * depth) & (np.sin(40 * depth ** 0.5) > 0.3)
    c.paint(dashes, rgb=(0.85, 0.85, 0.8))
    if not night and rng.random() < 0.5:                      # sun-heated patch (unlabelled)
        c.th[c.ellipse(rng.uniform(0.2, 0.8), rng.uniform(yh + 0.1, 0.9), 0.15, 0.05) & road] += 0.08
    if rng.random() < 0.5:                                    # manhole: warm, unlabelled
        my = rng.uniform(yh + 0.15, 0.95)
        dm = (my - yh) / (1 - yh)
        m = c.ellipse(vx + (0.5 - vx) * dm + rng.uniform(-0.2, 0.2) * dm, my, 0.05 * dm, 0.015 * dm)
        c.paint(m & road, rgb=(0.2, 0.2, 0.2), th=road_t + 0.2)
    # road-surface classes first (they lie under everything that stands on the road)
    if rng.random() < 0.5:                                    # 4 curve: painted arc
        a = rng.uniform(-0.6, 0.6)
        lo = rng.uniform(0.25, 0.6)
        off = centre + a * (depth - lo) ** 2 + rng.choice([-1, 1]) * 0.25 * depth
        m = road & (np.abs(c.xx - off) <= 0.006 + 0.012 * depth) & (depth > lo)
        c.paint(m, rgb=(0.9, 0.85, 0.3) if rng.random() < 0.5 else (0.9, 0.9, 0.9),
                th_delta=-0.02, label=4)
    if rng.random() < 0.3:                                    # 8 bump: striped band across the road
        yb = rng.uniform(yh + 0.1, 0.95)
        db = (yb - yh) / (1 - yh)
        band = road & (np.abs(c.yy - yb) <= 0.008 + 0.025 * db)
        stripes = np.sin(c.xx * 60 / max(db, 0.2)) > 0
        c.paint(band & stripes, rgb=(0.9, 0.75, 0.1), th_delta=0.02, label=8)
        c.paint(band & ~stripes, rgb=(0.08, 0.08, 0.08), th_delta=0.02, label=8)
    if rng.random() < 0.5:                                    # 6 guardrail along one road edge
        side = rng.choice([-1, 1])
        edge = centre + side * (half + 0.01)
        band = ground & (np.abs(c.xx - edge) <= 0.02 + 0.06 * depth) \
            & (c.yy <= yh + (1 - yh) * rng.uniform(0.6, 1.0))
        c.paint(band, rgb=(0.6, 0.62, 0.65), th_delta=-0.05 if night else 0.05, label=6)
        c.paint(band & (np.sin(c.yy * 90) > 0.5), rgb=(0.4, 0.42, 0.45))     # metallic stripes
    # standing objects, far to near
    objects = []
    for cls, rate in ((1, 1.6), (2, 1.3), (3, 0.6), (5, 0.5), (7, 0.8)):
        objects += [(rng.uniform(yh + 0.06, 1.02), cls) for _ in range(rng.poisson(rate))]
    lights = []
    for y_base, cls in sorted(objects):
        s = (y_base - yh) / (1 - yh)
        cx = vx + (0.5 - vx) * s + rng.uniform(-1.0, 1.0) * (0.1 + 0.6 * s)
        bg_t = float(np.median(c.th[c.rect(cx - 0.02, cx + 0.02, y_base - 0.02, y_base)])) \
            if c.rect(cx - 0.02, cx + 0.02, y_base - 0.02, y_base).any() else road_t
        if cls == 1:                                          # car
            bw, bh = 0.45 * s, 0.2 * s
            body = c.rect(cx - bw / 2, cx + bw / 2, y_base - bh, y_base - 0.15 * bh)
            cabin = c.rect(cx - bw / 3, cx + bw / 3, y_base - 1.6 * bh, y_base - bh)
            col = _colour(rng)
            c.paint(body | cabin, rgb=col, th=amb + 0.22, label=1)
            c.paint(c.rect(cx - bw / 3.6, cx + bw / 3.6, y_base - 1.5 * bh, y_base - 1.05 * bh),
                    rgb=(0.1, 0.12, 0.15))
            front = rng.choice([-1, 1])
            engine = body & (((c.xx - cx) * front) > bw / 6)
            c.paint(engine, th=rng.uniform(0.8, 0.95))
            for wx in (cx - bw / 3, cx + bw / 3):
                c.paint(c.ellipse(wx, y_base - 0.15 * bh, 0.05 * s, 0.07 * s), rgb=(0.05, 0.05, 0.05),
                        th=0.7, label=1)
            if night:
                for lx in (cx - bw / 2.4, cx + bw / 2.4):
                    lights.append((lx, y_base - 0.6 * bh, 0.03 * s + 0.01))
                    c.paint(c.ellipse(lx, y_base - 0.6 * bh, 0.02 * s, 0.015 * s), rgb=(1.0, 0.95, 0.7))
        elif cls in (2, 3):                                   # person, or a bike (often ridden)
            ridden = cls == 3 and rng.random() < 0.5
            if cls == 3:
                r = 0.06 * s
                for wx in (cx - 1.2 * r, cx + 1.2 * r):
                    c.paint(c.ring(wx, y_base - r, r, 0.006 + 0.01 * s), rgb=(0.1, 0.1, 0.12),
                            th_delta=0.05, label=3)
                frame = c.segment(cx - 1.2 * r, y_base - r, cx, y_base - 2.2 * r, 0.006 + 0.006 * s) \
                    | c.segment(cx, y_base - 2.2 * r, cx + 1.2 * r, y_base - r, 0.006 + 0.006 * s) \
                    | c.segment(cx - 1.2 * r, y_base - r, cx + 1.2 * r, y_base - r, 0.005 + 0.005 * s)
                c.paint(frame, rgb=(0.3, 0.3, 0.35), th_delta=0.03, label=3)
                if not ridden:
                    continue
                y_base = y_base - 1.2 * r
            ph = 0.4 * s
            skin = (0.85, 0.65, 0.5) if rng.random() < 0.5 else (0.45, 0.3, 0.2)
            clothes = _colour(rng, saturated=rng.random() < 0.6)
            torso = c.ellipse(cx, y_base - 0.62 * ph, 0.09 * ph, 0.2 * ph)
            legs = c.rect(cx - 0.07 * ph, cx - 0.015 * ph, y_base - 0.45 * ph, y_base) \
                | c.rect(cx + 0.015 * ph, cx + 0.07 * ph, y_base - 0.45 * ph, y_base)
            head = c.ellipse(cx, y_base - 0.9 * ph, 0.06 * ph, 0.08 * ph)
            c.paint(torso | legs, rgb=clothes, th=0.78, label=2)
            c.paint(head, rgb=skin, th=0.9, label=2)
        elif cls == 5:                                        # car stop: low block at the kerb
            bw, bh = 0.1 * s, 0.05 * s
            m = c.rect(cx - bw / 2, cx + bw / 2, y_base - bh, y_base)
            c.paint(m, rgb=(0.85, 0.75, 0.2) if rng.random() < 0.5 else (0.7, 0.7, 0.68),
                    th=bg_t, label=5, retro=True)
        elif cls == 7:                                        # colour cone
            half_w, ch = 0.045 * s + 0.005, 0.14 * s + 0.01
            cone = c.triangle(cx, y_base, half_w, ch)
            band = cone & (np.abs(c.yy - (y_base - 0.5 * ch)) <= 0.1 * ch)
            c.paint(cone, rgb=(0.95, 0.4, 0.05), th=bg_t, label=7)
            c.paint(band, rgb=(0.95, 0.95, 0.95), retro=True)
        if cls in (1, 2) and not night:                       # soft shadow under hot objects
            sh = c.ellipse(cx, y_base, 0.25 * s, 0.02 * s) & (c.label == 0) & ground
            c.rgb[:, sh] *= 0.6
    # illumination and RGB sensor
    rgb = c.rgb
    if night:
        g = rng.uniform(0.03, 0.12)
        lit = c.retro & (rng.random() < 0.5)
        rgb = rgb * g
        rgb[:, lit] = np.clip(c.rgb[:, lit] * 0.6, 0, 1)
        for _ in range(rng.integers(1, 4)):                   # streetlights
            lights.append((rng.uniform(0, 1), rng.uniform(0.05, yh), 0.04))
        for lx, ly, lr in lights:                             # saturating glare (labels unchanged)
            blob = np.exp(-((c.xx - lx) ** 2 + (c.yy - ly) ** 2) / (2 * lr ** 2))
            rgb = rgb + np.array([1.0, 0.9, 0.6], np.float32)[:, None, None] * blob[None]
        rgb = rgb + rng.normal(0, 0.03, rgb.shape)
    else:
        rgb = rgb * rng.uniform(0.7, 1.1) + rng.normal(0, 0.01, rgb.shape)
    # thermal camera: ambient gradient, gain/offset drift, half-resolution optics, blur, noise
    th = c.th + rng.uniform(-0.04, 0.04) * (c.yy - 0.5) + rng.uniform(-0.03, 0.03) * (c.xx - 0.5)
    th = th * rng.uniform(0.85, 1.15) + rng.uniform(-0.05, 0.05)
    if h >= 4 and w >= 4:
        small = th[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
        th = np.repeat(np.repeat(small, 2, 0), 2, 1)
        th = np.pad(th, ((0, h - th.shape[0]), (0, w - th.shape[1])), mode="edge")
    th = _blur(th, h / 64.0) + rng.normal(0, 0.02, (h, w))
    return (np.clip(rgb, 0, 1).astype(np.float32), np.clip(th, 0, 1).astype(np.float32), c.label)


def render_split(h: int, w: int, seed: int, n: int):
    """n scenes of one split: rgb uint8 (n, 3, H, W), thermal uint8 (n, 1, H, W),
    label uint8 (n, H, W), night bool (n,) (scene i is night when i is odd)."""
    rgb = np.empty((n, 3, h, w), np.uint8)
    th = np.empty((n, 1, h, w), np.uint8)
    lab = np.empty((n, h, w), np.uint8)
    night = np.arange(n) % 2 == 1
    for i in range(n):
        r, t, lab[i] = render(h, w, seed, i, bool(night[i]))
        rgb[i] = np.round(r * 255)
        th[i, 0] = np.round(t * 255)
    return rgb, th, lab, night
