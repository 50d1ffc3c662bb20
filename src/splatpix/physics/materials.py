"""Constitutive models of the MPM solver: Kirchhoff stress and plastic return mapping, numba and NumPy versions.

Every model gives the **Kirchhoff stress** ``tau = P F^T = J sigma`` of a particle from its (elastic) deformation
gradient ``F`` and its scalar plastic state ``Jp``; MLS-MPM needs nothing else (Hu et al. 2018, eq. 18:
``f_i = -sum_p V_p^0 tau_p D^-1 (x_i - x_p) w_ip`` with ``D^-1 = 4 / dx^2`` for quadratic B-splines).
Lame parameters come from Young's modulus and Poisson's ratio, ``mu = E / (2 (1 + nu))``,
``lambda = E nu / ((1 + nu)(1 - 2 nu))``.

* **elastic** (presets ``elastic``, ``jelly``): fixed-corotated hyperelasticity (Stomakhin et al. 2012; Jiang et
  al., "The material point method for simulating continuum materials", SIGGRAPH 2016 course, sec. 6.3)::

      psi = mu ||F - R||^2 + lambda/2 (J - 1)^2,   tau = 2 mu (F - R) F^T + lambda (J - 1) J I,

  ``R`` the rotation of the polar decomposition ``F = R S``. ``Jp`` stays 1.
* **snow**: the same model with plasticity (Stomakhin et al. 2013, "A material point method for snow
  simulation"): after each step the singular values of the trial ``F = U Sigma V^T`` are clamped to
  ``[1 - theta_c, 1 + theta_s]``, ``Jp *= det(Sigma) / det(Sigma_clamped)`` accumulates the plastic volume change
  and the Lame parameters harden as ``mu = mu0 h``, ``lambda = lambda0 h``, ``h = min(exp(xi (1 - Jp)), h_max)``.
* **sand**: Drucker-Prager elastoplasticity (Klar et al. 2016, "Drucker-Prager elastoplasticity for sand
  animation"), St. Venant-Kirchhoff in Hencky strain ``eps = log Sigma``::

      tau = U (2 mu eps + lambda tr(eps) I) U^T.

  Return mapping in log-strain space (d = 2): with ``eps_hat = eps - tr(eps)/d I`` and
  ``dgamma = ||eps_hat|| + (d lambda + 2 mu) / (2 mu) tr(eps) alpha``:
  ``tr(eps) > 0`` (tension) projects to the cone tip ``eps = 0``; ``dgamma <= 0`` is inside the cone (no
  change); otherwise ``eps -= dgamma eps_hat / ||eps_hat||``. In 2-D, ``dgamma <= 0`` reads
  ``||s|| <= -2 alpha p`` (deviatoric stress ``s``, mean stress ``p``), which is exactly Mohr-Coulomb
  ``(s1 - s2)/2 <= -p sin(phi_f)`` for ``alpha = sin(phi_f) / sqrt(2)``; that is used here. (Klar et al.'s
  ``alpha = sqrt(2/3) 2 sin(phi_f) / (3 - sin(phi_f))`` is the 3-D cone fit and would give an effective 2-D
  friction angle of 27.5 deg for ``phi_f = 30 deg``.) ``Jp`` accumulates ``exp(tr eps_trial - tr eps)``
  (the plastic volume change, informational). The friction angle is constant (Klar's hardening of ``phi_f`` is
  not modelled). Optional **cohesion** ``c`` (log-strain units, dimensionless) moves the cone tip to
  ``tr(eps) = c``: the mapping is applied to ``eps - c/d I`` and the shift added back, so the material holds
  volumetric tension up to ``tr(eps) = c``. Singular values below ``1e-6`` are clamped before the logarithm.
* **water**: weakly compressible fluid, no shear stiffness. Only ``J`` is tracked: after each step ``F`` is reset
  to ``sqrt(J) I`` and ``Jp = J``. Tait-type equation of state (Becker & Teschner 2007) with bulk modulus ``K``::

      p = K (J^-gamma - 1) / gamma,   tau = -J p I

  (``gamma = 1`` gives ``p = K (1/J - 1)``). ``K`` defaults to ``E / (3 (1 - 2 nu))``.

The numba functions work on one particle's scalars (the closed-form 2x2 SVD of :func:`svd2`: polar rotation
``R(theta)``, ``theta = atan2(F10 - F01, F00 + F11)``, then the symmetric eigenproblem of ``S = R^T F``; the
singular values are sorted, ``s1 >= |s2|``, and ``s2 < 0`` marks an inverted ``F``). The NumPy reference uses
``numpy.linalg.svd`` with the sign fix ``det(U V^T) = +1``; all results are isotropic functions of ``F``, so the
two agree to round-off although their singular vectors differ where singular values repeat.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numba
import numpy as np

from ..errors import SplatpixError
from ..jit import NUMBA_CACHE

__all__ = ["Material", "Materials", "PRESETS", "KINDS", "kirchhoff_ref", "project_ref", "elastic_energy_ref"]

ELASTIC, SNOW, SAND, WATER = 0, 1, 2, 3
KINDS = {"elastic": ELASTIC, "snow": SNOW, "sand": SAND, "water": WATER}
# columns of the packed material table
P_MU, P_LAM, P_THETA_C, P_THETA_S, P_XI, P_HMAX, P_ALPHA, P_COH, P_BULK, P_GAMMA = range(10)
N_PARAMS = 10
SIG_MIN = 1e-6  # singular values are clamped to this before log() (sand)

PRESETS: dict[str, dict[str, object]] = {
    # SI units with a 2-D domain of about a metre; densities are kg/m^3 (per unit depth).
    "elastic": {"kind": "elastic", "E": 1.0e5, "nu": 0.3, "density": 1000.0},
    "jelly": {"kind": "elastic", "E": 2.0e4, "nu": 0.3, "density": 1000.0},
    # Stomakhin et al. 2013, table 1 (the "lower hardening" row of theta_c / theta_s, xi = 10)
    "snow": {"kind": "snow", "E": 1.4e5, "nu": 0.2, "density": 400.0, "theta_c": 2.5e-2, "theta_s": 7.5e-3,
             "hardening": 10.0},
    # Klar et al. 2016: E = 3.537e5, nu = 0.3, rho = 2200
    "sand": {"kind": "sand", "E": 3.537e5, "nu": 0.3, "density": 2200.0, "friction_angle": 30.0},
    "water": {"kind": "water", "E": 1.0e5, "nu": 0.0, "density": 1000.0, "bulk_modulus": 1.0e5, "gamma": 7.0},
}


@dataclass(frozen=True)
class Material:
    """One material: a constitutive model (``kind``) and its parameters (SI units)."""

    kind: str = "elastic"
    E: float = 1.0e5  # Young's modulus [Pa]
    nu: float = 0.3  # Poisson's ratio, in (-1, 0.5)
    density: float = 1000.0  # [kg/m^3]
    theta_c: float = 2.5e-2  # snow: critical compression
    theta_s: float = 7.5e-3  # snow: critical stretch
    hardening: float = 10.0  # snow: xi
    hardening_max: float = 10.0  # snow: cap on the hardening factor h
    friction_angle: float = 30.0  # sand: phi_f [degrees]
    cohesion: float = 0.0  # sand: cone-tip shift in log strain (0: cohesionless)
    bulk_modulus: float | None = None  # water: K [Pa]; None -> E / (3 (1 - 2 nu))
    gamma: float = 7.0  # water: equation-of-state exponent
    name: str = ""

    def __post_init__(self) -> None:
        what = f"material {self.name or self.kind!r}"
        if self.kind not in KINDS:
            raise SplatpixError(f"{what}: unknown kind {self.kind!r} (choose from {', '.join(KINDS)})")
        vals = {"E": self.E, "nu": self.nu, "density": self.density, "theta_c": self.theta_c,
                "theta_s": self.theta_s, "hardening": self.hardening, "hardening_max": self.hardening_max,
                "friction_angle": self.friction_angle, "cohesion": self.cohesion, "gamma": self.gamma}
        if self.bulk_modulus is not None:
            vals["bulk_modulus"] = self.bulk_modulus
        for k, val in vals.items():
            if not math.isfinite(float(val)):
                raise SplatpixError(f"{what}: {k} must be finite, got {val}")
        if self.E <= 0:
            raise SplatpixError(f"{what}: Young's modulus E must be > 0, got {self.E}")
        if not -1.0 < self.nu < 0.5:
            raise SplatpixError(f"{what}: Poisson's ratio nu must be in (-1, 0.5), got {self.nu}")
        if self.density <= 0:
            raise SplatpixError(f"{what}: density must be > 0, got {self.density}")
        if not (0.0 <= self.theta_c < 1.0 and self.theta_s >= 0.0):
            raise SplatpixError(f"{what}: need 0 <= theta_c < 1 and theta_s >= 0, got {self.theta_c}, {self.theta_s}")
        if self.hardening < 0 or self.hardening_max < 1:
            raise SplatpixError(f"{what}: need hardening >= 0 and hardening_max >= 1")
        if not 0.0 <= self.friction_angle < 90.0:
            raise SplatpixError(f"{what}: friction_angle must be in [0, 90) degrees, got {self.friction_angle}")
        if self.cohesion < 0:
            raise SplatpixError(f"{what}: cohesion must be >= 0, got {self.cohesion}")
        if self.bulk_modulus is not None and self.bulk_modulus <= 0:
            raise SplatpixError(f"{what}: bulk_modulus must be > 0, got {self.bulk_modulus}")
        if self.gamma < 1:
            raise SplatpixError(f"{what}: gamma must be >= 1, got {self.gamma}")

    @classmethod
    def preset(cls, name: str, **overrides: object) -> Material:
        """A preset (``elastic``, ``jelly``, ``snow``, ``sand``, ``water``) with optional parameter overrides."""
        if name not in PRESETS:
            raise SplatpixError(f"unknown material preset {name!r} (choose from {', '.join(PRESETS)})")
        kw = {**PRESETS[name], "name": name, **overrides}
        return cls(**kw)  # type: ignore[arg-type]

    def lame(self) -> tuple[float, float]:
        """``(mu, lambda)``."""
        mu = self.E / (2.0 * (1.0 + self.nu))
        lam = self.E * self.nu / ((1.0 + self.nu) * (1.0 - 2.0 * self.nu))
        return mu, lam

    def bulk(self) -> float:
        """Bulk modulus used by the water model."""
        return float(self.bulk_modulus) if self.bulk_modulus is not None else self.E / (3.0 * (1.0 - 2.0 * self.nu))

    def wave_modulus(self) -> float:
        """Modulus ``M`` of the fastest wave at rest, ``c = sqrt(M / rho)``: ``lambda + 2 mu`` (P-wave) or ``K``."""
        if self.kind == "water":
            return self.bulk()
        mu, lam = self.lame()
        return lam + 2.0 * mu

    def with_(self, **changes: object) -> Material:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Materials:
    """The material table; a particle's ``material`` id indexes it. Give each distinct parameter set its own
    entry (the table may be long; per-particle parameters = one entry per particle)."""

    items: tuple[Material, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if len(self.items) == 0:
            raise SplatpixError("Materials: at least one material is needed")
        for m in self.items:
            if not isinstance(m, Material):
                raise SplatpixError(f"Materials: expected Material entries, got {type(m).__name__}")

    @classmethod
    def of(cls, *entries: Material | str) -> Materials:
        """``Materials.of("jelly", "sand", Material(kind="snow", E=1e5))``: preset names or materials."""
        return cls(tuple(Material.preset(e) if isinstance(e, str) else e for e in entries))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Material:
        return self.items[i]

    def __iter__(self) -> Iterator[Material]:
        return iter(self.items)

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        """Packed table for the kernels: ``kinds (M,) int64``, ``params (M, N_PARAMS) float64``."""
        kinds = np.array([KINDS[m.kind] for m in self.items], dtype=np.int64)
        params = np.zeros((len(self.items), N_PARAMS), dtype=np.float64)
        for k, m in enumerate(self.items):
            mu, lam = m.lame()
            sphi = math.sin(math.radians(m.friction_angle))
            params[k, P_MU], params[k, P_LAM] = mu, lam
            params[k, P_THETA_C], params[k, P_THETA_S] = m.theta_c, m.theta_s
            params[k, P_XI], params[k, P_HMAX] = m.hardening, m.hardening_max
            params[k, P_ALPHA] = sphi / math.sqrt(2.0)  # 2-D Mohr-Coulomb match (module docs)
            params[k, P_COH] = m.cohesion
            params[k, P_BULK], params[k, P_GAMMA] = m.bulk(), m.gamma
        return kinds, params

    def densities(self) -> np.ndarray:
        return np.array([m.density for m in self.items], dtype=np.float64)

    def wave_moduli(self) -> np.ndarray:
        return np.array([m.wave_modulus() for m in self.items], dtype=np.float64)


def as_materials(m: Materials | Sequence[Material | str] | Material | str) -> Materials:
    if isinstance(m, Materials):
        return m
    if isinstance(m, Material | str):
        return Materials.of(m)
    return Materials.of(*m)


# ----------------------------------------------------------------------------------------------------------------
# numba: one particle at a time
# ----------------------------------------------------------------------------------------------------------------


@numba.njit(cache=NUMBA_CACHE, inline="always")
def polar_rotation(a: float, b: float, c: float, d: float) -> tuple[float, float]:
    """``(cos theta, sin theta)`` of the rotation of the polar decomposition of ``F = [[a, b], [c, d]]``."""
    x = a + d
    y = c - b
    r = math.sqrt(x * x + y * y)
    if r == 0.0:
        return 1.0, 0.0
    return x / r, y / r


@numba.njit(cache=NUMBA_CACHE, inline="always")
def svd2(a: float, b: float, c: float, d: float) -> tuple[float, float, float, float, float, float]:
    """Signed SVD ``F = U diag(s1, s2) V^T`` with ``U = rot(u)``, ``V = rot(v)``:
    returns ``(cos u, sin u, cos v, sin v, s1, s2)``, ``s1 >= |s2|``."""
    ct, st = polar_rotation(a, b, c, d)
    s00 = ct * a + st * c
    s01 = 0.5 * ((ct * b + st * d) + (-st * a + ct * c))
    s11 = -st * b + ct * d
    h = 0.5 * (s00 - s11)
    m = 0.5 * (s00 + s11)
    r = math.sqrt(h * h + s01 * s01)
    phi = 0.5 * math.atan2(s01, h)
    cv = math.cos(phi)
    sv = math.sin(phi)
    cu = ct * cv - st * sv
    su = st * cv + ct * sv
    return cu, su, cv, sv, m + r, m - r


@numba.njit(cache=NUMBA_CACHE, inline="always")
def usv(cu: float, su: float, cv: float, sv: float, s1: float, s2: float) -> tuple[float, float, float, float]:
    """``rot(u) diag(s1, s2) rot(v)^T`` as ``(m00, m01, m10, m11)``."""
    return (s1 * cu * cv + s2 * su * sv, s1 * cu * sv - s2 * su * cv,
            s1 * su * cv - s2 * cu * sv, s1 * su * sv + s2 * cu * cv)


@numba.njit(cache=NUMBA_CACHE)
def kirchhoff(a: float, b: float, c: float, d: float, jp: float, kind: int,
              params: np.ndarray, m: int) -> tuple[float, float, float, float]:
    """Kirchhoff stress ``tau`` of one particle (material row ``m`` of ``params``)."""
    mu = params[m, P_MU]
    lam = params[m, P_LAM]
    J = a * d - b * c
    if kind == WATER:
        g = params[m, P_GAMMA]
        p = params[m, P_BULK] * (J ** (-g) - 1.0) / g
        return -J * p, 0.0, 0.0, -J * p
    if kind == SAND:
        cu, su, cv, sv, s1, s2 = svd2(a, b, c, d)
        e1 = math.log(max(s1, SIG_MIN))
        e2 = math.log(max(s2, SIG_MIN))
        tr = lam * (e1 + e2)
        return usv(cu, su, cu, su, 2.0 * mu * e1 + tr, 2.0 * mu * e2 + tr)
    if kind == SNOW:
        h = min(math.exp(params[m, P_XI] * (1.0 - jp)), params[m, P_HMAX])
        mu *= h
        lam *= h
    ct, st = polar_rotation(a, b, c, d)
    # (F - R) F^T with R = [[ct, -st], [st, ct]]
    r00, r01, r10, r11 = a - ct, b + st, c - st, d - ct
    t00 = r00 * a + r01 * b
    t01 = r00 * c + r01 * d
    t10 = r10 * a + r11 * b
    t11 = r10 * c + r11 * d
    vol = lam * (J - 1.0) * J
    return 2.0 * mu * t00 + vol, 2.0 * mu * t01, 2.0 * mu * t10, 2.0 * mu * t11 + vol


@numba.njit(cache=NUMBA_CACHE)
def project(a: float, b: float, c: float, d: float, jp: float, kind: int,
            params: np.ndarray, m: int) -> tuple[float, float, float, float, float]:
    """Plastic return mapping of a trial ``F``: returns the projected ``F`` and the new ``Jp``."""
    if kind == ELASTIC:
        return a, b, c, d, jp
    if kind == WATER:
        J = a * d - b * c
        s = math.sqrt(J)
        return s, 0.0, 0.0, s, J
    cu, su, cv, sv, s1, s2 = svd2(a, b, c, d)
    if kind == SNOW:
        lo = 1.0 - params[m, P_THETA_C]
        hi = 1.0 + params[m, P_THETA_S]
        n1 = min(max(s1, lo), hi)
        n2 = min(max(s2, lo), hi)
        f00, f01, f10, f11 = usv(cu, su, cv, sv, n1, n2)
        return f00, f01, f10, f11, jp * (s1 * s2) / (n1 * n2)
    # sand: Drucker-Prager in Hencky strain
    mu = params[m, P_MU]
    lam = params[m, P_LAM]
    alpha = params[m, P_ALPHA]
    half_c = 0.5 * params[m, P_COH]
    e1 = math.log(max(s1, SIG_MIN))
    e2 = math.log(max(s2, SIG_MIN))
    tr = e1 + e2 - 2.0 * half_c
    if tr > 0.0:
        n1 = half_c
        n2 = half_c
    else:
        dev1 = 0.5 * (e1 - e2)
        dev2 = -dev1
        dn = math.sqrt(dev1 * dev1 + dev2 * dev2)
        dgamma = dn + (2.0 * lam + 2.0 * mu) / (2.0 * mu) * tr * alpha
        if dgamma <= 0.0 or dn == 0.0:
            return a, b, c, d, jp
        n1 = e1 - dgamma * dev1 / dn
        n2 = e2 - dgamma * dev2 / dn
    f00, f01, f10, f11 = usv(cu, su, cv, sv, math.exp(n1), math.exp(n2))
    return f00, f01, f10, f11, jp * math.exp((e1 + e2) - (n1 + n2))


# ----------------------------------------------------------------------------------------------------------------
# NumPy reference: all particles at once
# ----------------------------------------------------------------------------------------------------------------


def svd_ref(F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched signed SVD ``F = U diag(S) Vt`` with ``det(U) = det(Vt) = +1`` (``S[:, 1]`` may be negative)."""
    U, S, Vt = np.linalg.svd(F)
    U = U.copy()
    S = S.copy()
    Vt = Vt.copy()
    du = np.linalg.det(U)
    dv = np.linalg.det(Vt)
    fix_u = du < 0
    U[fix_u, :, 1] *= -1.0
    S[fix_u, 1] *= -1.0
    fix_v = dv < 0
    Vt[fix_v, 1, :] *= -1.0
    S[fix_v, 1] *= -1.0
    return U, S, Vt


def _rebuild(U: np.ndarray, S: np.ndarray, Vt: np.ndarray) -> np.ndarray:
    return np.einsum("pik,pk,pkj->pij", U, S, Vt)


def kirchhoff_ref(F: np.ndarray, Jp: np.ndarray, mat: np.ndarray, kinds: np.ndarray,
                  params: np.ndarray) -> np.ndarray:
    """Kirchhoff stress of all particles, (P, 2, 2)."""
    kind = kinds[mat]
    prm = params[mat]
    mu = prm[:, P_MU].copy()
    lam = prm[:, P_LAM].copy()
    J = np.linalg.det(F)
    eye = np.eye(2)
    tau = np.zeros_like(F)
    snow = kind == SNOW
    h = np.minimum(np.exp(prm[:, P_XI] * (1.0 - Jp)), prm[:, P_HMAX])
    mu[snow] *= h[snow]
    lam[snow] *= h[snow]
    fc = (kind == ELASTIC) | snow
    if fc.any():
        U, _, Vt = svd_ref(F[fc])
        R = U @ Vt
        Ff = F[fc]
        Jf = J[fc]
        tau[fc] = (2.0 * mu[fc, None, None] * (Ff - R) @ np.swapaxes(Ff, 1, 2)
                   + (lam[fc] * (Jf - 1.0) * Jf)[:, None, None] * eye)
    sand = kind == SAND
    if sand.any():
        U, S, _ = svd_ref(F[sand])
        eps = np.log(np.maximum(S, SIG_MIN))
        diag = 2.0 * mu[sand, None] * eps + (lam[sand] * eps.sum(1))[:, None]
        tau[sand] = _rebuild(U, diag, np.swapaxes(U, 1, 2))
    water = kind == WATER
    if water.any():
        g = prm[water, P_GAMMA]
        Jw = J[water]
        p = prm[water, P_BULK] * (Jw ** (-g) - 1.0) / g
        tau[water] = (-Jw * p)[:, None, None] * eye
    return tau


def project_ref(F: np.ndarray, Jp: np.ndarray, mat: np.ndarray, kinds: np.ndarray,
                params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return mapping of all particles' trial ``F``: ``(F, Jp)`` (new arrays)."""
    kind = kinds[mat]
    prm = params[mat]
    F = F.copy()
    Jp = Jp.copy()
    snow = kind == SNOW
    if snow.any():
        U, S, Vt = svd_ref(F[snow])
        lo = (1.0 - prm[snow, P_THETA_C])[:, None]
        hi = (1.0 + prm[snow, P_THETA_S])[:, None]
        Sc = np.minimum(np.maximum(S, lo), hi)
        F[snow] = _rebuild(U, Sc, Vt)
        Jp[snow] = Jp[snow] * S.prod(1) / Sc.prod(1)
    sand = kind == SAND
    if sand.any():
        U, S, Vt = svd_ref(F[sand])
        ps = prm[sand]
        mu, lam, alpha = ps[:, P_MU], ps[:, P_LAM], ps[:, P_ALPHA]
        half_c = 0.5 * ps[:, P_COH]
        eps = np.log(np.maximum(S, SIG_MIN))
        tr = eps.sum(1) - 2.0 * half_c
        dev = eps - 0.5 * eps.sum(1, keepdims=True)
        dn = np.linalg.norm(dev, axis=1)
        dgamma = dn + (2.0 * lam + 2.0 * mu) / (2.0 * mu) * tr * alpha
        tip = tr > 0.0
        cone = ~tip & (dgamma > 0.0) & (dn > 0.0)
        new = eps.copy()
        new[tip] = half_c[tip, None]
        new[cone] = eps[cone] - (dgamma[cone] / dn[cone])[:, None] * dev[cone]
        moved = tip | cone
        idx = np.flatnonzero(sand)[moved]
        F[idx] = _rebuild(U[moved], np.exp(new[moved]), Vt[moved])
        Jp[idx] = Jp[idx] * np.exp(eps[moved].sum(1) - new[moved].sum(1))
    water = kind == WATER
    if water.any():
        J = np.linalg.det(F[water])
        with np.errstate(invalid="ignore"):
            s = np.sqrt(J)
        Fw = np.zeros((len(J), 2, 2))
        Fw[:, 0, 0] = s
        Fw[:, 1, 1] = s
        F[water] = Fw
        Jp[water] = J
    return F, Jp


def elastic_energy_ref(F: np.ndarray, Jp: np.ndarray, mat: np.ndarray, kinds: np.ndarray,
                       params: np.ndarray) -> np.ndarray:
    """Strain energy density ``psi`` per particle (per unit reference volume), (P,)."""
    kind = kinds[mat]
    prm = params[mat]
    mu = prm[:, P_MU].copy()
    lam = prm[:, P_LAM].copy()
    snow = kind == SNOW
    h = np.minimum(np.exp(prm[:, P_XI] * (1.0 - Jp)), prm[:, P_HMAX])
    mu[snow] *= h[snow]
    lam[snow] *= h[snow]
    J = np.linalg.det(F)
    U, S, Vt = svd_ref(F)
    psi = np.zeros(len(F))
    fc = (kind == ELASTIC) | snow
    R = U @ Vt
    psi[fc] = mu[fc] * ((F[fc] - R[fc]) ** 2).sum((1, 2)) + 0.5 * lam[fc] * (J[fc] - 1.0) ** 2
    sand = kind == SAND
    eps = np.log(np.maximum(S[sand], SIG_MIN))
    psi[sand] = mu[sand] * (eps**2).sum(1) + 0.5 * lam[sand] * eps.sum(1) ** 2
    water = kind == WATER
    K, g, Jw = prm[water, P_BULK], prm[water, P_GAMMA], J[water]
    with np.errstate(invalid="ignore", divide="ignore"):
        g1 = np.where(g == 1.0, 2.0, g)  # avoid 0/0 in the unused branch
        tait = -(K / g1) * ((Jw ** (1.0 - g1) - 1.0) / (1.0 - g1) - (Jw - 1.0))
        lin = -K * (np.log(Jw) - (Jw - 1.0))
    psi[water] = np.where(g == 1.0, lin, tait)
    return psi
