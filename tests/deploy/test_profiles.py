"""GPU memory profiles (roles/ollama/profiles.py): each fits its class; a misfit is a sentence."""

from __future__ import annotations

import pytest

from roles.ollama.profiles import PROFILES, Profile, fit_problem, need_gb


@pytest.mark.parametrize("profile", PROFILES, ids=[f"{p.vram_gb}GB" for p in PROFILES])
def test_each_profile_fits_its_class(profile: Profile) -> None:
    models = [profile.main, *([profile.background] if profile.background else [])]
    mib = profile.vram_gb * 1024
    assert fit_problem(models, profile.context, profile.parallel, 2, mib) is None
    assert profile.need_gb() <= profile.vram_gb * 1024**3 / 1e9


def test_kv_cache_follows_context_and_slots() -> None:
    # qwen2.5-coder:7b: 28 layers x 4 KV heads x 128 x 2 (K, V) x 2 bytes = 57,344 B per token
    one = need_gb("qwen2.5-coder:7b", 32768, 1)
    two = need_gb("qwen2.5-coder:7b", 32768, 2)
    assert one is not None and two is not None
    assert two - one == pytest.approx(57344 * 32768 / 1e9)
    assert need_gb("mystery-model:1b", 32768, 1) is None


def test_a_misfit_names_the_needs_and_a_profile_that_fits() -> None:
    problem = fit_problem(["qwen2.5-coder:14b", "qwen2.5-coder:1.5b"], 32768, 1, 2, 16 * 1024)
    assert problem is not None
    assert "qwen2.5-coder:14b 16.4 GB + qwen2.5-coder:1.5b 2.9 GB" in problem
    assert "need 19.4 GB of GPU memory together, but this GPU has 17.2 GB" in problem
    assert "use the 16 GB profile" in problem
    # only the models Ollama keeps loaded together count; unknown models are not judged
    assert fit_problem(["qwen2.5-coder:14b", "qwen2.5-coder:1.5b"], 32768, 1, 1, 16 * 1024) is None
    assert fit_problem(["mystery:70b"], 32768, 1, 2, 1024) is None
