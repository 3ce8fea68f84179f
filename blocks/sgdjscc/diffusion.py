"""``decoder.sgd_diffusion``: the semantics-guided diffusion denoiser of seed 004 (SGD-JSCC),
network and samplers in one block (the sampling loop cannot be unrolled into a DAG).

Phases (runtime param ``phase``, set per train stage through a variable):

* ``off``  -- z passes through unchanged: VAEJSCC, the paper's baseline without the DM.
* ``fit``  -- Algorithm 1 / eq. (20): draw t ~ U(0, 1), noise the clean latent f0 to
  f_t = sqrt(1-bbar_t) f0 + sqrt(bbar_t) n and predict f0; outputs ``pred`` (and ``pred_masked``
  from the MDT masked pass), ``target`` = f0 for the loss ``mse(pred, target) + mse(pred_masked, target)``.
* ``fit_control`` -- the same with the ControlNet branch fed with the edge map (stage 3 of the
  paper; train only the ``control`` parameters, the base frozen).
* ``sample`` -- step matching (eq. 19) and the deterministic sampler of Algorithm 2 (DDIM,
  eq. 16 with sigma = 0), or DPM-Solver++(2M) (the released code); classifier-free guidance
  (the code; not in the paper); Algorithm 3 (eqs. 22-24) when the per-element levels differ
  (fast fading).
"""
from __future__ import annotations

import math

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from . import _schedule as S
from ._dit import DiT

SQRT2 = math.sqrt(2.0)


def complex_to_latent(z: torch.Tensor, c: int, h: int, w: int) -> torch.Tensor:
    """Complex (B, N) -> real (B, c, h, w) with unit power per real element: the DeepJSCC
    pairing (z[n] = v[2n] + j v[2n+1]) undone and scaled by sqrt(2)."""
    return torch.view_as_real(z).reshape(z.shape[0], c, h, w) * SQRT2


def latent_to_complex(f: torch.Tensor) -> torch.Tensor:
    b = f.shape[0]
    return torch.view_as_complex((f / SQRT2).reshape(b, -1, 2).contiguous())


def levels_to_latent(d: torch.Tensor, c: int, h: int, w: int) -> torch.Tensor:
    """Per-complex-element levels (B, N) -> per-real-element (B, c, h, w) (paired elements share h)."""
    return d.repeat_interleave(2, dim=1).reshape(d.shape[0], c, h, w)


_FIT_PHASES = ("fit", "fit_control")


@register("decoder.sgd_diffusion")
class SGDDiffusion(Block):
    """Semantics-guided DM denoiser D(f~ | s~; Omega) of seed 004 (SGD-JSCC, eq. 11; Secs. V-B, VI).

    The received, VP-normalised latent f~ = sqrt(1-d) f + sqrt(d) n (eqs. 8, 22) is a diffusion
    state at level d. ``sample``: m = S^-1(d) (eq. 19; S the sigmoid schedule of eq. 17), then
    ``steps`` reverse steps from t = m to 0 on an even grid (Algorithm 2), each asking the DiT
    for an x0 prediction (blocks/sgdjscc/_dit.py) conditioned on the level (adaLN), the caption
    tokens (cross-attention) and the decoded edge map (ControlNet). With per-element levels
    (fast fading) ``fading_mode: waterfill`` runs Algorithm 3: before each step every element
    cleaner than the current level bbar_t gets noise up to it (eq. 23); after it, elements at
    least as noisy as bbar_s take the denoised value (eq. 24). With equal levels this is
    exactly Algorithm 2. The fit phases train the DiT on clean latents f0 (Algorithm 1, eq. 20).

    Latent convention: the complex (B, N) symbols are unpaired into a real (B, c, h, w) tensor
    scaled by sqrt(2), so signal and noise have unit power per real element (N = c*h*w/2).

    Shapes: z complex (B, N) received latent; d real (B, N) noise level per complex element
            (e.g. estimator.snr_blind.d); f0 complex (B, N) clean latent (fit phases);
            tokens int (B, L); edge, edge_ref real (B, E, H, W) decoded / clean edge maps
            -> z complex (B, N) denoised latent; pred, pred_masked, target real (B, c, h, w)
            (fit phases; zeros otherwise).
    """
    inputs = {
        "z": Port("complex", ("B", "N"), tag="symbols", doc="received VP-normalised latent f~"),
        "d": Port("real", ("B", "N"), optional=True, doc="noise level per complex element (needed to sample)"),
        "f0": Port("complex", ("B", "N"), optional=True, tag="symbols", doc="clean latent (fit phases)"),
        "tokens": Port("int", ("B", "L"), optional=True, doc="caption tokens (text guidance)"),
        "edge": Port("real", ("B", "E", "H", "W"), optional=True, doc="decoded edge map (edge guidance)"),
        "edge_ref": Port("real", ("B", "E", "H", "W"), optional=True,
                         doc="clean edge map: the ControlNet hint in fit_control when control_hint_train = clean"),
    }
    outputs = {
        "z": Port("complex", ("B", "N"), tag="symbols", doc="denoised latent f^_0 (phase off: z unchanged)"),
        "pred": Port("real", ("B", "c", "h", "w"), doc="x0 prediction of the fit phases"),
        "pred_masked": Port("real", ("B", "c", "h", "w"),
                            doc="x0 prediction of the MDT masked pass (equals target without mask_branch)"),
        "target": Port("real", ("B", "c", "h", "w"), doc="f0 as a real latent (fit phases)"),
    }
    params = {
        # ---- network (build time)
        "channels": Param(int, 4, "latent channels c (the image encoder's 'channels')"),
        "size": Param(int, 8, "latent side h = w (image side / 4 for extractor.deepjscc)"),
        "image_size": Param(int, 32, "side H = W of the edge map (ControlNet hint)"),
        "edge_channels": Param(int, 1, "channels E of the edge map"),
        "dim": Param(int, 96, "DiT width D (code: 512)"),
        "heads": Param(int, 4, "attention heads (code: 8)"),
        "depth_in": Param(int, 2, "encoder in-blocks (code: 4)"),
        "depth_out": Param(int, 2, "encoder out-blocks with long skips (code: 4)"),
        "depth_dec": Param(int, 0, "decoder blocks after the encoder (code: 4)"),
        "mlp_ratio": Param(float, 4.0, "MLP hidden width / D"),
        "vocab": Param(int, 32, "caption vocabulary size (token 0 = null)"),
        "rel_pos_bias": Param(bool, True, "relative position bias in self-attention (code: on)"),
        "mask_branch": Param(bool, False, "MDT masked training pass with a side interpolator (eq. 20, 2nd term)"),
        "controlnet": Param(bool, True, "build the ControlNet edge branch (Fig. 5)"),
        "schedule": Param(str, "sigmoid", "noise schedule S(t): sigmoid (eq. 17) or cosine ([38])",
                          choices=("sigmoid", "cosine")),
        "sched_e": Param(float, 3.0, "sigmoid schedule end e (eq. 17; paper: 3)"),
        "sched_g": Param(float, 0.0, "sigmoid schedule start g (eq. 17; the paper's 's = 0')"),
        "sched_tau": Param(float, 0.7, "sigmoid schedule temperature tau (eq. 17; paper: 0.7)"),
        "cond_on": Param(str, "beta", "what the adaLN embedding sees: beta (bbar_t, the paper), sigma "
                                      "(sqrt(bbar_t), the code) or t", choices=("beta", "sigma", "t")),
        # ---- behaviour (runtime)
        "phase": Param(str, "sample", "off (VAEJSCC: pass through), fit (Alg. 1), fit_control "
                       "(ControlNet stage), sample (Alg. 2/3)", runtime=True,
                       choices=("off", "fit", "fit_control", "sample")),
        "steps": Param(int, 20, "sampler steps K from m to 0 (code: 50)", runtime=True),
        "sampler": Param(str, "ddim", "ddim (Alg. 2) or dpmpp2m (the code's DPM-Solver++(2M))",
                         runtime=True, choices=("ddim", "dpmpp2m")),
        "eta": Param(float, 0.0, "DDIM stochasticity; 0 = the paper's deterministic sampler", runtime=True),
        "t_min": Param(float, 1e-3, "smallest start time m (very high SNR)", runtime=True),
        "d_max": Param(float, 0.999, "levels are clamped to at most this", runtime=True),
        "guidance_scale": Param(float, 1.0, "classifier-free guidance scale s; 1 with a constant "
                                "schedule = no guidance pass (the paper); code: 4", runtime=True),
        "guidance_schedule": Param(str, "constant", "constant w = s, or pcs: w(t) = s (1 - cos(pi t))/2 "
                                   "(the code)", runtime=True, choices=("constant", "pcs")),
        "control_scale": Param(float, 1.0, "ControlNet residual scale kappa", runtime=True),
        "control_scale_table": Param(list, [], "optional [[snr_db, kappa], ...]: kappa of the entry "
                                     "nearest the SNR implied by d (the code keys a table on the TRUE "
                                     "SNR; here it is the d input, i.e. the estimate in blind mode)",
                                     runtime=True),
        "use_text": Param(bool, True, "text guidance (off: the null token)", runtime=True),
        "use_edge": Param(bool, True, "edge guidance (off: no ControlNet residuals)", runtime=True),
        "start": Param(str, "matched", "matched (f_m = f~ at m = S^-1(d), eq. 19), pure_noise (start "
                       "from N(0, I) at t = 1: generation from the side information alone), fixed "
                       "(m from fixed_snr_db whatever the channel)", runtime=True,
                       choices=("matched", "pure_noise", "fixed")),
        "fixed_snr_db": Param(float, 10.0, "SNR whose level start: fixed assumes", runtime=True),
        "timesteps": Param(str, "continuous", "continuous (the paper) or discrete: m snapped to the "
                           "nearest of num_discrete grid levels (CDDM-style step matching); training "
                           "draws t from the same grid", runtime=True, choices=("continuous", "discrete")),
        "num_discrete": Param(int, 20, "grid size for timesteps: discrete", runtime=True),
        "fading_mode": Param(str, "waterfill", "per-element levels (fast fading): waterfill (Alg. 3), "
                             "waterfill_code (the released code's variant), mean (treat as slow fading "
                             "at the mean level), max (Alg. 2 from the largest level)", runtime=True,
                             choices=("waterfill", "waterfill_code", "mean", "max")),
        "latent_shift": Param(float, 0.0, "added to latent channels 0 and 3 before decoding (the "
                              "code's 0.1 'sharp/bright' shift)", runtime=True),
        "normalize_output": Param(bool, True, "rescale f^_0 to unit power per example before the "
                                  "decoder (the code's normalize())", runtime=True),
        "cond_dropout": Param(float, 0.1, "fit phases: probability of the null text token / no edge "
                              "per example (for classifier-free guidance)", runtime=True),
        "mask_ratio": Param(float, 0.3, "MDT mask ratio r; r + U(0, mask_jitter) per batch", runtime=True),
        "mask_jitter": Param(float, 0.2, "random extra mask ratio per batch (code: 0.2)", runtime=True),
        "control_hint_train": Param(str, "clean", "ControlNet hint in fit_control: clean (edge_ref) "
                                    "or decoded (edge)", runtime=True, choices=("clean", "decoded")),
    }
    taps = {"m": "start time m per example (B,)",
            "trajectory": "states f_t from m to 0, real (K+1, B, c, h, w)",
            "w_cfg": "guidance weight per step (K,)",
            "control_norm": "RMS of the ControlNet residuals of the last network call"}

    @classmethod
    def bind_dims(cls, p):
        c, s = p["channels"], p["size"]
        return {"N": c * s * s // 2, "c": c, "h": s, "w": s, "H": p["image_size"], "W": p["image_size"],
                "E": p["edge_channels"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        if (p.channels * p.size * p.size) % 2:
            raise ValueError("decoder.sgd_diffusion: channels*size^2 must be even (complex pairing)")
        self.sched = S.Schedule(p.schedule, p.sched_e, p.sched_g, p.sched_tau)
        self.net = DiT(p.channels, p.size, p.dim, p.heads, p.depth_in, p.depth_out, p.depth_dec,
                       p.mlp_ratio, p.vocab, p.rel_pos_bias, p.mask_branch, p.controlnet,
                       p.edge_channels, p.image_size)

    def needed_inputs(self):
        """What each phase reads, so a train stage does not run the unused receiver branches
        (the edge codec and the estimator in the JSCC and DM stages)."""
        p = self.p
        if p.phase == "off":
            return {"z"}
        text = {"tokens"} if p.use_text else set()
        if p.phase == "fit":
            return {"z", "f0"} | text
        if p.phase == "fit_control":
            return {"z", "f0", "edge_ref" if p.control_hint_train == "clean" else "edge"} | text
        edge = {"edge"} if (p.use_edge and p.controlnet) else set()
        return {"z", "d"} | text | edge

    # ------------------------------------------------------------------ helpers
    def _cond(self, bbar, t):
        if self.p.cond_on == "beta":
            return bbar
        if self.p.cond_on == "sigma":
            return torch.sqrt(bbar)
        return t

    def _tokens(self, tokens):
        if tokens is not None and tokens.numel() and int(tokens.max()) >= self.p.vocab:
            raise ValueError(f"decoder.sgd_diffusion: token {int(tokens.max())} >= vocab {self.p.vocab}")
        return tokens if self.p.use_text else None

    def _control_scale(self, b, d_mean, device):
        p = self.p
        if not (p.use_edge and p.controlnet):
            return None
        if p.control_scale_table:
            table = torch.tensor([[float(a), float(k)] for a, k in p.control_scale_table])
            snr = S.snr_db_of_d(d_mean).float().cpu()
            idx = (snr[:, None] - table[None, :, 0]).abs().argmin(dim=1)
            return table[idx, 1].to(device)
        return torch.full((b,), float(p.control_scale), device=device)

    def _snap(self, t):
        """Discrete step matching: the grid point whose level is nearest (CDDM picks argmin |alpha_k - alpha|)."""
        n = self.p.num_discrete
        grid = torch.arange(n + 1, dtype=torch.float64) / n
        levels = self.sched.beta_bar(grid)
        bt = self.sched.beta_bar(t)
        return grid[(bt[:, None] - levels[None]).abs().argmin(dim=1)]

    def _predict(self, f, bt, t, tokens, edge, kappa):
        """Guided x0 prediction at level bt (B,): w * cond + (1 - w) * uncond (classifier-free)."""
        p, b = self.p, f.shape[0]
        level = self._cond(bt, t).to(f.dtype)
        use_edge = edge is not None and kappa is not None
        guided = not (p.guidance_scale == 1.0 and p.guidance_schedule == "constant")
        if not guided:
            return self.net(f, level, tokens, edge if use_edge else None, kappa if use_edge else None), 1.0
        w = p.guidance_scale
        if p.guidance_schedule == "pcs":
            w = p.guidance_scale * (1 - torch.cos(math.pi * t.to(f.dtype))) / 2
        w = torch.as_tensor(w, dtype=f.dtype, device=f.device).reshape(-1, 1, 1, 1)
        tok = tokens if tokens is not None else torch.zeros(b, 1, dtype=torch.long, device=f.device)
        null = torch.zeros_like(tok)
        kap = None
        if use_edge:
            kap = torch.cat((kappa, torch.zeros_like(kappa)))
        both = self.net(torch.cat((f, f)), torch.cat((level, level)), torch.cat((tok, null)),
                        torch.cat((edge, edge)) if use_edge else None, kap)
        cond, uncond = both[:b], both[b:]
        return w * cond + (1 - w) * uncond, float(w.mean())

    # ------------------------------------------------------------------ phases
    def _fit(self, f0, tokens, edge, edge_ref):
        p = self.p
        if f0 is None:
            raise ValueError(f"decoder.sgd_diffusion: phase {p.phase} needs the clean latent f0 connected")
        c, s = p.channels, p.size
        x0 = complex_to_latent(f0, c, s, s)
        b = x0.shape[0]
        if p.timesteps == "discrete":
            t = torch.randint(1, p.num_discrete + 1, (b,), device=x0.device).double() / p.num_discrete
        else:
            t = torch.rand(b, dtype=torch.float64, device=x0.device).clamp_min(p.t_min)
        bbar = self.sched.beta_bar(t)
        bt = bbar.to(x0.dtype).view(b, 1, 1, 1)
        f_t = torch.sqrt(1 - bt) * x0 + torch.sqrt(bt) * torch.randn_like(x0)
        level = self._cond(bbar, t).to(x0.dtype)
        keep = (torch.rand(b, device=x0.device) >= p.cond_dropout)
        tok = self._tokens(tokens)
        if tok is not None:
            tok = tok * keep[:, None].to(tok.dtype)            # dropped examples see the null token
        hint, kappa = None, None
        if p.phase == "fit_control":
            if not p.controlnet:
                raise ValueError("decoder.sgd_diffusion: phase fit_control needs controlnet: true")
            hint = edge_ref if p.control_hint_train == "clean" else edge
            if hint is None:
                port = "edge_ref" if p.control_hint_train == "clean" else "edge"
                raise ValueError(f"decoder.sgd_diffusion: fit_control with control_hint_train = "
                                 f"{p.control_hint_train} needs input '{port}' connected")
            kappa = (torch.rand(b, device=x0.device) >= p.cond_dropout).to(x0.dtype)
        pred = self.net(f_t, level, tok, hint, kappa)
        if p.mask_branch and p.phase == "fit":
            r = min(0.95, p.mask_ratio + p.mask_jitter * float(torch.rand(())))
            pred_masked = self.net(f_t, level, tok, None, None, mask_ratio=r)
        else:
            pred_masked = x0
        return pred, pred_masked, x0

    def _sample(self, z, d, tokens, edge):
        p = self.p
        if d is None:
            raise ValueError("decoder.sgd_diffusion: phase sample needs the noise level d connected")
        c, s = p.channels, p.size
        f = complex_to_latent(z, c, s, s)
        b = f.shape[0]
        lv = levels_to_latent(d.to(f.dtype), c, s, s).clamp(S.EPS, p.d_max)
        d_mean = lv.flatten(1).mean(1).double()
        if p.start == "fixed":
            lv = torch.full_like(lv, float(S.d_of_snr_db(p.fixed_snr_db)))
        elif p.start == "pure_noise":
            f = torch.randn_like(f)
            lv = torch.full_like(lv, 1 - S.EPS)
        mode = p.fading_mode
        if mode == "mean":
            lv = lv.flatten(1).mean(1).view(b, 1, 1, 1).expand_as(lv).clone()
        elif mode == "max":
            lv = lv.flatten(1).amax(1).view(b, 1, 1, 1).expand_as(lv).clone()
        lv_max = lv.flatten(1).amax(1).double()
        m = self.sched.t_of(lv_max).clamp_min(p.t_min) if p.start != "pure_noise" else torch.ones_like(lv_max)
        if p.timesteps == "discrete" and p.start != "pure_noise":
            m = self._snap(m)
        self.publish("m", m.float())
        tok = self._tokens(tokens)
        kappa = self._control_scale(b, d_mean, f.device) if edge is not None else None
        k_steps = max(1, int(p.steps))
        grid = self._grid(m, k_steps)                          # (K+1, B), grid[0] = m, grid[-1] = 0
        traj, ws = [f], []
        x0_prev, bt_prev = None, None
        for k in range(k_steps):
            t, t_next = grid[k], grid[k + 1]
            bt, bs = self.sched.beta_bar(t), self.sched.beta_bar(t_next) * (t_next > 0)
            if mode == "waterfill_code":
                g = S.water_fill_code(f, torch.sqrt(lv), torch.sqrt(bt).to(f.dtype))
            elif mode == "waterfill":
                g = S.water_fill(f, lv, bt.to(f.dtype))
            else:
                g = f
            x0, w = self._predict(g, bt, t, tok, edge, kappa)
            ws.append(w)
            if mode == "waterfill_code":
                f, sd = S.code_fading_update(f, torch.sqrt(lv), x0, torch.sqrt(bs).to(f.dtype))
                lv = sd ** 2
            else:
                dterm = x0
                if p.sampler == "dpmpp2m":
                    dterm = S.dpmpp_2m_x0(x0, x0_prev, bt, bs, bt_prev)
                g_s = S.ddim_step(g, dterm, bt.to(f.dtype), bs.to(f.dtype), eta=p.eta)
                if mode == "waterfill":
                    f, lv = S.alg3_update(f, lv, g_s, bs.to(f.dtype))
                else:
                    f, lv = g_s, bs.to(f.dtype).view(b, 1, 1, 1).expand_as(lv)
            x0_prev, bt_prev = x0, bt
            traj.append(f)
        self.publish("trajectory", torch.stack(traj))
        self.publish("w_cfg", torch.tensor(ws))
        if getattr(self.net, "last_control_norm", None) is not None and kappa is not None:
            self.publish("control_norm", self.net.last_control_norm)
        return f

    def _grid(self, m, k_steps):
        """Times t_k from m down to 0: even steps of m/K (Alg. 2); on the discrete grid, the
        grid points nearest those."""
        frac = torch.linspace(1.0, 0.0, k_steps + 1, dtype=torch.float64, device=m.device)
        grid = frac[:, None] * m[None, :]
        if self.p.timesteps == "discrete":
            n = self.p.num_discrete
            grid = torch.round(grid * n) / n
        return grid

    def forward(self, z, d=None, f0=None, tokens=None, edge=None, edge_ref=None):
        p = self.p
        c, s = p.channels, p.size
        if z.shape[1] * 2 != c * s * s:
            raise ValueError(f"decoder.sgd_diffusion: z has {z.shape[1]} complex symbols per example, "
                             f"expected channels*size^2/2 = {c * s * s // 2}")
        zeros = z.real.new_zeros(z.shape[0], c, s, s)
        if p.phase == "off":
            return {"z": z, "pred": zeros, "pred_masked": zeros, "target": zeros}
        if p.phase in _FIT_PHASES:
            pred, pred_masked, target = self._fit(f0, tokens, edge, edge_ref)
            return {"z": z, "pred": pred, "pred_masked": pred_masked, "target": target}
        f = self._sample(z, d, tokens, edge)
        if p.latent_shift:
            f = f.clone()
            for ch in (0, 3):
                if ch < c:
                    f[:, ch] = f[:, ch] + p.latent_shift
        if p.normalize_output:
            f = f / f.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12).view(-1, 1, 1, 1)
        return {"z": latent_to_complex(f).to(z.dtype), "pred": zeros, "pred_masked": zeros, "target": zeros}
