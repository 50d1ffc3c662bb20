"""Model <-> particles: the image <-> simulation mapping, F -> covariance (with the y flip), particle order,
volumes, material assignment, colliders, for both model kinds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import pixel_lattice, tiny_field

from splatpix.edit.apply import gaussian_geometry
from splatpix.errors import SplatpixError
from splatpix.model.gaussians import Gaussians, params_from_covariance
from splatpix.physics import Bridge, Circle, HalfPlane, domain_map, parse_scene
from splatpix.physics.bridge import assign_materials, auto_grid_res, particle_volumes

H, W = 32, 48


def random_model(n: int = 200, seed: int = 1) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    a = 1 + 3 * torch.rand(n, generator=g)
    cov = torch.stack((a, 0.4 * torch.rand(n, generator=g), 2 + torch.rand(n, generator=g)), 1)
    return Gaussians(torch.rand((n, 2), generator=g), params_from_covariance(cov, "cholesky"),
                     torch.rand((n, 3), generator=g), "cholesky", (H, W))


def one_scene(region: str = "all", **sim) -> object:
    return parse_scene({"materials": [{"preset": "elastic", "region": region}], "simulation": sim})


def rot(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


# ------------------------------------------------------------------------------------------------ the mapping


def test_domain_places_the_image_on_the_floor_between_the_walls():
    d = domain_map((H, W), 48, 1.0, boundary_cells=3)
    assert d.scale == pytest.approx(1 / 48) and d.dx == pytest.approx(1 / 48)
    assert (d.nx, d.ny) == (48 + 5, 32 + 5)
    rest = 2.5 * d.dx  # (boundary_cells - 1/2) dx: half a cell below where the walls stop particle centres
    corners = d.to_sim(np.array([[0.0, H], [W, H], [0.0, 0.0], [W, 0.0]]))
    top = rest + 2 / 3
    np.testing.assert_allclose(corners, [[rest, rest], [rest + 1, rest], [rest, top], [rest + 1, top]], atol=1e-12)
    # aspect ratio kept; margin adds room on the left, right and top only; the floor stays at the image bottom
    m = domain_map((H, W), 48, 1.0, boundary_cells=3, margin=0.5)
    assert (m.nx, m.ny) == (53 + 32, 37 + 16)
    np.testing.assert_allclose(m.to_sim(np.array([[0.0, H]]))[0], [rest + 16 * m.dx, rest], atol=1e-12)
    # a non-integer number of cells along the shorter side: the slack goes to the top
    t = domain_map((H, W), 40, 2.0)
    assert t.ny == math.ceil(32 * 40 / 48) + 5 and t.to_sim(np.array([[0.0, H]]))[0, 1] == pytest.approx(2.5 * t.dx)
    with pytest.raises(SplatpixError, match="too coarse"):
        domain_map((4, 400), 64)


def test_positions_round_trip_and_y_points_up():
    d = domain_map((H, W), 64, 1.5, margin=0.2)
    p = np.random.default_rng(0).uniform(-5, 60, (100, 2))
    np.testing.assert_allclose(d.to_image(d.to_sim(p)), p, atol=1e-10)
    a, b = d.to_sim(np.array([[10.0, 5.0], [10.0, 25.0]]))
    assert b[1] < a[1] and a[0] == b[0]  # further down the image = lower in the simulation
    assert a[1] - b[1] == pytest.approx(20 * d.scale)


def test_identity_F_keeps_the_covariances():
    d = domain_map((H, W), 64)
    cov = np.array([[[4.0, 1.0], [1.0, 2.0]]])
    np.testing.assert_allclose(d.cov_to_image(d.cov_to_sim(cov)), cov, atol=1e-12)
    np.testing.assert_allclose(d.F_to_image(np.eye(2)[None]), np.eye(2)[None])
    # the simulation-frame covariance of a Gaussian leaning down-right on screen leans down-right with y up
    cs = d.cov_to_sim(cov)[0]
    assert cs[0, 1] < 0 and cs[0, 0] == pytest.approx(4 * d.scale**2)


@pytest.mark.parametrize("theta", [math.radians(30), math.radians(-50), math.radians(90)])
def test_sim_rotation_is_a_counter_clockwise_rotation_on_screen(theta):
    d = domain_map((H, W), 64)
    cov = np.diag([9.0, 1.0])[None]  # long along x
    Fi = d.F_to_image(rot(theta)[None])[0]
    c, s = math.cos(theta), math.sin(theta)
    np.testing.assert_allclose(Fi, [[c, s], [-s, c]], atol=1e-12)
    # on screen (y down) a counter-clockwise turn by theta takes right (1, 0) to (cos, -sin) and up (0, -1) to
    # (-sin, -cos): up-right and up-left for theta = 30 deg
    np.testing.assert_allclose(Fi @ [1.0, 0.0], [c, -s], atol=1e-12)
    np.testing.assert_allclose(Fi @ [0.0, -1.0], [-s, -c], atol=1e-12)
    out = Fi @ cov[0] @ Fi.T
    w, v = np.linalg.eigh(out)
    np.testing.assert_allclose(w, [1.0, 9.0], atol=1e-9)
    assert abs(v[:, 1] @ [c, -s]) == pytest.approx(1.0)  # the long axis turned with it
    if 0 < theta < math.pi / 2:
        assert out[0, 1] < 0  # leaning up-right on screen: x and y (down) anti-correlated
    # and the same through the physical covariance: Sigma_sim' = F Sigma_sim F^T, mapped back
    back = d.cov_to_image(rot(theta) @ d.cov_to_sim(cov)[0] @ rot(theta).T)
    np.testing.assert_allclose(back, out, atol=1e-9)


def test_stretch_and_shear_map_with_the_y_flip():
    d = domain_map((H, W), 64)
    cov = np.array([[[4.0, 0.5], [0.5, 1.0]]])
    for F in (np.diag([2.0, 0.5]), np.array([[1.0, 0.3], [0.0, 1.0]]), np.array([[1.1, 0.2], [-0.4, 0.9]])):
        Fi = d.F_to_image(F[None])[0]
        expect = d.cov_to_image(F @ d.cov_to_sim(cov)[0] @ F.T)
        np.testing.assert_allclose(Fi @ cov[0] @ Fi.T, expect, atol=1e-10)
    np.testing.assert_allclose(d.F_to_image(np.array([[[1.0, 0.3], [0.0, 1.0]]]))[0], [[1.0, -0.3], [0.0, 1.0]])


def test_colliders_map_to_the_simulation_frame():
    d = domain_map((H, W), 48)
    c = d.collider(parse_scene({**{"materials": [{"preset": "jelly", "region": "all"}]}, "simulation": {
        "colliders": [{"type": "circle", "centre": [0.5, 0.25], "radius": 0.25}]}}).simulation.colliders[0])
    assert isinstance(c, Circle)
    np.testing.assert_allclose(c.center, d.to_sim(np.array([[0.5 * W, 0.25 * H]]))[0])
    assert c.radius == pytest.approx(0.25 * H * d.scale)  # fraction of the shorter side
    p = d.collider(parse_scene({"materials": [{"preset": "jelly", "region": "all"}], "simulation": {
        "colliders": [{"type": "half_plane", "point": [0.5, 0.75], "normal": [0.5, -1], "mode": "sticky"}]}}
    ).simulation.colliders[0])
    assert isinstance(p, HalfPlane) and p.normal == (0.5, 1.0) and p.mode == "sticky"  # up on screen = up


# ------------------------------------------------------------------------------------------------ the bridge


@pytest.mark.parametrize("kind", ["gaussians", "rs", "gainer"])
def test_round_trip_at_rest_gives_the_same_model(kind):
    model = (tiny_field(150, (H, W)) if kind == "gainer" else random_model() if kind == "gaussians"
             else pixel_lattice((H, W), param="rs"))
    b = Bridge(model, one_scene("all", grid_res=48))
    assert b.clamped == 0 and len(b.static) == 0
    n = model.n
    out = b.to_model(b.state.x, np.broadcast_to(np.eye(2), (n, 2, 2)))
    assert type(out) is type(model) and out.n == n
    m0, c0, _ = gaussian_geometry(model)
    m1, c1, _ = gaussian_geometry(out)
    torch.testing.assert_close(m1, m0, atol=1e-4, rtol=0)
    torch.testing.assert_close(c1, c0, atol=1e-5, rtol=1e-4)
    if kind == "gainer":
        torch.testing.assert_close(out.baked_features, model.gaussian_features().detach())
        assert not model.baked  # the input is not modified


def test_particle_order_is_the_gaussian_order():
    model = random_model(300)
    b = Bridge(model, one_scene("box:0.2,0.1,0.8,0.7", grid_res=48))
    means_px = gaussian_geometry(model)[0].numpy()
    u, v = means_px[:, 0] / W, means_px[:, 1] / H
    inside = np.flatnonzero((u >= 0.2) & (u <= 0.8) & (v >= 0.1) & (v <= 0.7))
    np.testing.assert_array_equal(b.index, inside)
    assert np.all(np.diff(b.index) > 0)
    np.testing.assert_allclose(b.state.x, b.domain.to_sim(means_px[b.index]), atol=1e-12)
    # move particle p by p pixels to the right: Gaussian index[p] moves, nothing else does
    p = np.arange(len(b.index), dtype=np.float64)
    x = b.state.x + np.stack((p * b.domain.scale * 0.01, np.zeros_like(p)), 1)
    means, _ = b.geometry(x, np.broadcast_to(np.eye(2), (len(p), 2, 2)))
    np.testing.assert_allclose(means[b.index, 0] - means_px[b.index, 0], 0.01 * p, atol=1e-9)
    np.testing.assert_array_equal(means[b.static], means_px[b.static])


def test_known_F_deforms_only_the_simulated_gaussians():
    model = random_model(300)
    b = Bridge(model, one_scene("ellipse:0.5,0.5,0.3,0.3", grid_res=48))
    R = rot(math.radians(40))
    out = b.to_model(b.state.x, np.broadcast_to(R, (len(b.index), 2, 2)))
    _, c0, _ = gaussian_geometry(model)
    _, c1, _ = gaussian_geometry(out)
    Ri = torch.from_numpy(b.domain.F_to_image(R[None])[0])
    i = torch.from_numpy(b.index)
    torch.testing.assert_close(c1[i], Ri @ c0[i] @ Ri.T, atol=1e-4, rtol=1e-4)
    s = torch.from_numpy(b.static)
    assert torch.equal(out.cov_params[s], model.cov_params[s]) and torch.equal(out.means[s], model.means[s])


def test_volumes_follow_gaussian_area_and_sum_to_the_region_area():
    model = random_model(400)
    b = Bridge(model, one_scene("box:0.25,0.25,0.75,0.75", grid_res=48))
    area_px = 24 * 16  # pixel centres inside the box
    assert b.objects[0]["area_px"] == area_px
    assert b.state.vol0.sum() == pytest.approx(area_px * b.domain.scale**2, rel=1e-12)
    _, cov, _ = gaussian_geometry(model)
    a = 2 * math.pi * np.sqrt(np.linalg.det(cov.numpy()[b.index]))
    ratio = b.state.vol0 / a
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)  # proportional (no clipping needed here)
    np.testing.assert_allclose(b.state.mass, 1000.0 * b.state.vol0)  # elastic density
    # clipping: one huge Gaussian carries at most 10x the median area
    cov3 = np.broadcast_to(np.eye(2), (5, 2, 2)).copy()
    cov3[0] *= 1e4
    vol = particle_volumes(cov3, np.zeros(5, np.int64), [100.0])
    assert vol.sum() == pytest.approx(100.0) and vol[0] / vol[1] == pytest.approx(10.0)


def test_first_region_wins_and_the_rest_is_static():
    model = pixel_lattice((H, W))
    sc = parse_scene({"materials": [{"preset": "jelly", "region": "box:0,0,0.5,1"},
                                    {"preset": "sand", "region": "box:0.25,0,1,0.5"}]})
    assign, areas = assign_materials(model, sc.materials)
    u, v = model.means[:, 0].numpy(), model.means[:, 1].numpy()
    np.testing.assert_array_equal(assign[u <= 0.5], 0)
    np.testing.assert_array_equal(assign[(u > 0.5) & (v <= 0.5)], 1)
    np.testing.assert_array_equal(assign[(u > 0.5) & (v > 0.5)], -1)
    assert areas == [24 * 32, 24 * 16]  # the second object's area leaves out what the first took
    b = Bridge(model, sc)
    assert b.materials[0].kind == "elastic" and b.materials[1].kind == "sand"
    np.testing.assert_array_equal(b.state.material, assign[b.index])
    for k, area in enumerate(areas):
        sel = b.state.material == k
        assert b.state.vol0[sel].sum() == pytest.approx(area * b.domain.scale**2)


def test_auto_grid_res_and_clamping():
    assert auto_grid_res(50_000, 768 * 512, (512, 768)) == round(768 / math.sqrt(4 * 768 * 512 / 50_000))
    assert auto_grid_res(10, 1e6, (512, 768)) == 32 and auto_grid_res(10**8, 1e4, (512, 768)) == 256
    g = Gaussians(torch.tensor([[0.5, 0.5], [-0.5, 0.5], [0.5, 1.4]]), torch.ones(3, 3) * torch.tensor([1.0, 0, 1]),
                  torch.ones(3, 3), "cholesky", (H, W))
    b = Bridge(g, one_scene("all", grid_res=48))
    assert b.clamped == 2
    lo_x, lo_y, hi_x, hi_y = b.domain.valid_box()
    assert b.state.x[:, 0].min() >= lo_x and b.state.x[:, 1].min() >= lo_y


def test_velocity_and_no_particles():
    sc = parse_scene({"materials": [{"preset": "jelly", "region": "box:0,0,0.5,1", "velocity": [1.5, -2]}]})
    b = Bridge(pixel_lattice((H, W)), sc)
    np.testing.assert_allclose(b.state.v, np.tile([1.5, -2.0], (len(b.index), 1)))
    empty = Bridge(pixel_lattice((H, W)), one_scene("box:2,2,3,3"))
    assert len(empty.index) == 0 and empty.state.n == 0 and empty.objects[0]["gaussians"] == 0


@pytest.mark.parametrize("kind", ["gaussians", "gainer"])
def test_rebuild_model_inverts_gaussian_geometry(kind):
    from splatpix.edit.apply import rebuild_model

    model = tiny_field(150, (H, W)) if kind == "gainer" else random_model()
    means, cov, _ = gaussian_geometry(model)
    out = rebuild_model(model, means, cov)
    m1, c1, _ = gaussian_geometry(out)
    torch.testing.assert_close(m1, means, atol=1e-4, rtol=0)
    torch.testing.assert_close(c1, cov, atol=1e-5, rtol=1e-4)
    # with an index only those rows change; the others keep their exact parameters
    idx = torch.tensor([3, 7])
    part = rebuild_model(model, means[idx] + 1.0, 2.0 * cov[idx], idx)
    m2, c2, _ = gaussian_geometry(part)
    torch.testing.assert_close(m2[idx], means[idx] + 1.0, atol=1e-4, rtol=0)
    torch.testing.assert_close(c2[idx], 2.0 * cov[idx], atol=1e-5, rtol=1e-4)
    rest = torch.ones(model.n, dtype=torch.bool)
    rest[idx] = False
    assert torch.equal(part.means[rest], model.means[rest]) and torch.equal(part.cov_params[rest],
                                                                             model.cov_params[rest])
