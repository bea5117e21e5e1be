from pathlib import Path

import pytest

from worldmodels.config import Config, incompatible_keys, parse_set, resolve
from worldmodels.errors import UserError
from worldmodels.registry import REGISTRY
from worldmodels.training.actor_critic_config import ActorCriticConfig, ImaginationConfig
from worldmodels.training.ppo_baseline import PpoConfig


def test_presets_stack_in_order():
    cfg = resolve("CartPole-v1", ["debug"], {}, parse_set(["vision.epochs=7"]))
    assert cfg.vision.latent_dim == 8  # CartPole preset (and debug)
    assert cfg.collect.episodes == 6  # debug beats env preset
    assert cfg.vision.epochs == 7  # --set beats both
    assert cfg.presets == ["debug"]


def test_set_parses_yaml_values_and_checks_types():
    cfg = resolve(
        "CartPole-v1",
        [],
        {},
        parse_set(
            [
                "controller.hidden_dims=[16, 8]",
                "vision.lr=0.01",
                "memory.sample_latents=false",
                "controller.target_return=null",
            ]
        ),
    )
    assert cfg.controller.hidden_dims == [16, 8]
    assert cfg.vision.lr == 0.01 and cfg.memory.sample_latents is False
    assert cfg.controller.target_return is None
    assert resolve("CartPole-v1", [], {}, parse_set(["vision.lr=1"])).vision.lr == 1.0
    assert resolve("CartPole-v1", [], {}, parse_set(["vision.lr=1e-4"])).vision.lr == 1e-4
    with pytest.raises(UserError, match="expects float or null"):
        resolve("CartPole-v1", [], {}, parse_set(["controller.target_return=high"]))


@pytest.mark.parametrize(
    "item,needle",
    [
        ("vision.nope=1", "unknown config key 'vision.nope'"),
        ("vision.epochs=ten", "expects an integer"),
        ("memory.sample_latents=3", "expects true or false"),
        ("vision=3", "is a section"),
        ("novalue", "expects key=value"),
        ("controller.population=1", "population must be >= 2"),
    ],
)
def test_bad_overrides_are_user_errors(item, needle):
    with pytest.raises(UserError, match=needle):
        resolve("CartPole-v1", [], {}, parse_set([item]))


def test_resume_may_change_budgets_but_not_shapes():
    a = Config()
    b = Config()
    b.vision.epochs = 99
    b.controller.generations = 3
    assert incompatible_keys(a, b) == []
    b.vision.latent_dim = 7
    b.seed = 4
    assert incompatible_keys(a, b) == ["seed", "vision.latent_dim"]


def test_beta_anneals_linearly_and_defaults_per_model_kind():
    from worldmodels.training.vision import beta_at

    cfg = resolve("CarRacing-v3", [], {}, parse_set(["vision.beta_anneal_epochs=4"]))
    assert [beta_at(cfg, "conv_vae", e) for e in range(5)] == [1.0, 2.0, 3.0, 4.0, 4.0]
    cfg.vision.beta = 2.0
    assert beta_at(cfg, "conv_vae", 1) == 1.0
    cfg.vision.beta, cfg.vision.beta_anneal_epochs = None, 0
    assert beta_at(cfg, "mlp_vae", 0) == 0.05


def test_a_world_model_yaml_is_accepted(tmp_path):
    """A world model + PPO config file's ``world_model:`` section (vae / mdn_rnn / training /
    data_collection) reads as this config's keys."""
    from worldmodels.config import load_yaml, resolve
    from worldmodels.methods.wm_ppo import translate_world_model_yaml

    path = tmp_path / "world_model_ppo.yaml"
    path.write_text(
        "world_model:\n"
        "  vae: {latent_dim: 16, hidden_dims: [64, 32], beta: 1.0, learning_rate: 0.001}\n"
        "  mdn_rnn: {hidden_dim: 32, num_mixtures: 3, temperature: 1.0, learning_rate: 1e-3}\n"
        "  training: {pretrain_epochs: 4, imagination_ratio: 0.5, imagination_horizon: 15}\n"
        "  data_collection: {random_collection_steps: 10000}\n"
    )
    cfg = resolve("CartPole-v1", [], translate_world_model_yaml(load_yaml(path), str(path)), {})
    assert cfg.method == "wm-ppo"
    assert (cfg.vision.latent_dim, cfg.vision.hidden_dims, cfg.vision.beta) == (16, [64, 32], 1.0)
    assert (cfg.memory.hidden_dim, cfg.memory.num_mixtures, cfg.memory.lr) == (32, 3, 1e-3)
    assert cfg.vision.epochs == cfg.memory.epochs == 4
    imagination = cfg.section(ImaginationConfig)
    assert (imagination.ratio, imagination.horizon) == (0.5, 15)
    assert imagination.random_steps == 10000
    path.write_text("world_model:\n  vae: {latent_size: 3}\n")
    with pytest.raises(UserError, match=r"unknown key world_model\.vae\.latent_size"):
        translate_world_model_yaml(load_yaml(path), str(path))


def test_method_presets_apply_only_to_their_method():
    from worldmodels.config import resolve

    ppo = resolve("CartPole-v1", [], {}, {"method": "wm-ppo"})
    classic = resolve("CartPole-v1", [], {}, {})
    assert ppo.section(ImaginationConfig).ratio == 0.8
    assert classic.section(ImaginationConfig).ratio == 0.5
    from worldmodels.pipeline import open_run

    with pytest.raises(UserError, match="unknown method 'nope'"):
        open_run("unused-run-dir", "CartPole-v1", set_items=["method=nope"])
    assert not Path("unused-run-dir").exists()


# what an env's dreamer entry may set (DreamerV3's configs vary these by domain); every other
# dreamer setting is one value for every env
DREAMER_PER_ENV = {"dreamer." + k for k in (
    "total_steps", "prefill", "train_ratio", "batch_size", "seq_len",
    "deter", "groups", "classes", "hidden", "layers", "cnn_depth",
)} | {"env.frame_skip", "env.image_size"}  # fmt: skip
NO_DREAMER_ENTRY = {"Acrobot-v1": "vector", "MountainCarContinuous-v0": "vector",
                    "ALE/Pong-v5": "pixels"}  # fmt: skip


def _dreamer_configs() -> dict[str, dict]:
    """Every env with a dreamer entry, and a few without one, resolved for --method dreamer;
    each as flat dreamer.* and env.* items."""
    from worldmodels.config import flat_items, to_dict
    from worldmodels.config.presets import method_files

    envs = {env: None for env in method_files()["dreamer"]["envs"]} | NO_DREAMER_ENTRY
    out = {}
    for env, kind in envs.items():
        cfg = resolve(env, [], {}, {"method": "dreamer"}, obs_kind=kind)
        flat = flat_items(to_dict(cfg))
        out[env] = {k: v for k, v in flat.items() if k.split(".")[0] in ("dreamer", "env")}
    return out


def test_every_env_gets_one_dreamer_learning_configuration():
    """0 dreamer settings differ between the envs' resolved configs, size, budget, replay
    ratio, action repeat and image size aside (and env.id); the sizes do differ."""
    configs = _dreamer_configs()
    assert len(configs) >= 7
    keys = set().union(*configs.values()) - DREAMER_PER_ENV - {"env.id"}
    differ = {k for k in keys if len({repr(c.get(k)) for c in configs.values()}) > 1}
    assert not differ, differ
    assert len({repr(sorted((k, c[k]) for k in DREAMER_PER_ENV)) for c in configs.values()}) >= 3
    lunar, car = configs["LunarLander-v3"], configs["CarRacing-v3"]
    assert (lunar["dreamer.deter"], lunar["env.frame_skip"], lunar["dreamer.train_ratio"]) == (
        256, 2, 128,
    )  # fmt: skip
    assert (car["env.image_size"], car["env.frame_skip"], car["dreamer.total_steps"]) == (
        32, 4, 100_000,
    )  # fmt: skip


def test_an_env_without_a_dreamer_entry_is_sized_by_its_observations():
    """Acrobot gets the CPU vector size and a 10,000-step budget (not DreamerV3's 256 x 2
    model at ratio 512 over 100,000 steps, ~23 hours here); Pong the CNN's 32x32 size."""
    configs = _dreamer_configs()
    acro, cart, pong = configs["Acrobot-v1"], configs["CartPole-v1"], configs["ALE/Pong-v5"]
    assert all(acro[k] == cart[k] for k in DREAMER_PER_ENV)
    assert (acro["dreamer.total_steps"], acro["dreamer.deter"]) == (10_000, 128)
    assert (pong["env.image_size"], pong["dreamer.cnn_depth"], pong["dreamer.groups"]) == (
        32,
        16,
        16,
    )
    plain = resolve("Acrobot-v1", [], {}, {"method": "dreamer"})  # kind unknown: not sized
    assert plain.section("dreamer").total_steps == 100_000


def test_dreamer_gpu_preset_scales_sizes_over_the_one_learning_configuration():
    cpu = resolve("CartPole-v1", [], {}, {"method": "dreamer"}).section("dreamer")
    gpu = resolve("CartPole-v1", ["gpu"], {}, {"method": "dreamer"}).section("dreamer")
    assert (cpu.deter, cpu.hidden, cpu.bins) == (128, 128, 65)
    assert (gpu.deter, gpu.hidden, gpu.layers, gpu.groups, gpu.classes) == (512, 512, 2, 32, 32)
    assert (gpu.bins, gpu.seq_len, gpu.cnn_depth) == (255, 64, 32)
    assert (gpu.critic_lr, gpu.repval_scale, gpu.total_steps) == (3e-4, 0.0, 10_000)
    assert (cpu.act_policy, cpu.stop_window, gpu.act_policy) == ("mode", 5, "mode")
    car = resolve("CarRacing-v3", ["gpu"], {}, {"method": "dreamer"})
    assert (car.section("dreamer").deter, car.section("dreamer").total_steps) == (512, 100_000)
    assert car.env.image_size == 64
    assert resolve("CarRacing-v3", [], {}, {"method": "ppo"}).env.frame_skip == 2
    assert resolve("CarRacing-v3", [], {}, {"method": "ppo"}).env.image_size == 64


def test_an_env_without_preset_gets_defaults_sized_from_its_spaces(tmp_path):
    """Acrobot (6 numbers, 3 actions) used to get the paper's CarRacing sizes (latent 32,
    LSTM 256): minutes per stage for a tiny env."""
    from worldmodels.pipeline import open_run

    ctx = open_run(tmp_path / "a", "Acrobot-v1", progress=False)
    assert (ctx.cfg.vision.latent_dim, ctx.cfg.memory.hidden_dim) == (12, 64)
    assert ctx.cfg.controller.population == 32
    ctx = open_run(tmp_path / "b", "Acrobot-v1", set_items=["memory.hidden_dim=96"], progress=False)
    assert ctx.cfg.memory.hidden_dim == 96  # --set still wins
    cart = open_run(tmp_path / "c", "CartPole-v1", progress=False).cfg
    assert (cart.vision.latent_dim, cart.vision.epochs) == (8, 20)  # its preset, not sized


def test_a_method_declares_its_own_section(monkeypatch):
    """A method declares its section beside its code: typed keys in --set and YAML, each
    field's rules and resume mutability from its ``knob``, its own checks, round-tripped
    through config.yaml."""
    from dataclasses import dataclass

    import yaml

    from worldmodels.config import SECTIONS, declare_section, dump_yaml, knob
    from worldmodels.config.merge import apply_overrides

    @dataclass
    class ToyConfig:
        width: int = 4
        budget: int = knob(10, mutable=True)
        clip_range: float = 3.0  # no rule by name: a plain float is >= 0
        lr: float = knob(0.5, rate=True)

        def check(self) -> None:
            if self.width % 2:
                raise UserError("toy.width must be even")

    monkeypatch.setitem(SECTIONS, "toy", ToyConfig)  # as declare_section does, undone after
    assert declare_section("toy", ToyConfig) is ToyConfig  # declaring again: a no-op
    with pytest.raises(ValueError, match="declared twice"):
        declare_section("toy", PpoConfig)
    cfg = resolve("CartPole-v1", [], {}, parse_set(["toy.width=8"]))
    assert cfg.section(ToyConfig).width == 8
    wide_clip = resolve("CartPole-v1", [], {}, parse_set(["toy.clip_range=7"]))
    assert wide_clip.section(ToyConfig).clip_range == 7.0
    with pytest.raises(UserError, match="expects an integer"):
        resolve("CartPole-v1", [], {}, parse_set(["toy.width=wide"]))
    with pytest.raises(UserError, match=r"toy\.width must be even"):
        resolve("CartPole-v1", [], {}, parse_set(["toy.width=7"]))
    with pytest.raises(UserError, match=r"toy\.width=0 is out of range: it must be >= 1"):
        resolve("CartPole-v1", [], {}, parse_set(["toy.width=0"]))  # the generic rule
    with pytest.raises(UserError, match=r"toy\.lr=2\.0 is out of range: it must be \(0, 1\]"):
        resolve("CartPole-v1", [], {}, parse_set(["toy.lr=2"]))  # its knob
    with pytest.raises(UserError, match=r"unknown config key 'toy\.depth'"):
        resolve("CartPole-v1", [], {}, parse_set(["toy.depth=1"]))
    back = Config()
    apply_overrides(back, yaml.safe_load(dump_yaml(cfg)))
    assert back == cfg and "toy" in yaml.safe_load(dump_yaml(cfg))
    more = resolve("CartPole-v1", [], {}, parse_set(["toy.width=8", "toy.budget=99"]))
    assert incompatible_keys(cfg, more) == []
    wider = resolve("CartPole-v1", [], {}, parse_set(["toy.width=10"]))
    assert incompatible_keys(cfg, wider) == ["toy.width"]


def test_resume_mutable_keys_are_the_declared_ones():
    """Which keys a resumed run may change comes from each field's ``knob(mutable=True)``:
    budgets, parallelism, evaluation and planning, nothing that shapes a checkpoint."""
    from worldmodels.config import flat_items, resume_mutable, to_dict

    mutable = {k for k in flat_items(to_dict(Config())) if resume_mutable(k)}
    assert mutable == {
        *("collect.episodes", "collect.workers", "vision.epochs", "memory.epochs"),
        *("memory.temperature", "device", "threads", "method"),
        *(f"controller.{k}" for k in ("generations", "eval_every", "eval_episodes")),
        *("controller.target_return", "controller.workers"),
        *(f"dream.{k}" for k in ("horizon", "start", "done_mode", "start_states", "rollouts")),
        *(f"dream.{k}" for k in ("iterations", "eval_episodes", "collect_episodes")),
        "dream.retrain_epochs",
        *(f"ac.{k}" for k in ("total_steps", "updates", "target_return", "stop_window")),
        *(f"ac.{k}" for k in ("eval_every", "eval_episodes", "dream_gate")),
        *("ac.dream_gate_episodes", "ac.dream_gate_fraction"),
        *(f"ppo.{k}" for k in ("total_steps", "target_return", "stop_window", "eval_every")),
        "ppo.eval_episodes",
        *(f"evaluate.{k}" for k in ("episodes", "seed_offset", "batch_envs", "planner")),
        *(f"parallel.{k}" for k in ("executor", "ray_address", "task_timeout", "max_retries")),
        "mpc.total_steps",
        *(f"planner.{k}" for k in ("kind", "horizon", "gamma", "aggregate", "blend")),
        *(f"planner.{k}" for k in ("max_sequences", "population", "elites", "iterations")),
        *(f"planner.{k}" for k in ("init_std", "mppi_lambda", "seed")),
        *(f"dreamer.{k}" for k in ("total_steps", "target_return", "stop_at_target")),
        *(f"dreamer.{k}" for k in ("stop_window", "stop_confirm", "replay_memory_gb")),
        *(f"dreamer.{k}" for k in ("bf16", "eval_policy", "eval_checkpoint")),
    }


def test_config_and_methods_package_import_no_method():
    """The config layer and the methods package import no method file: the registry (above
    the methods) does, and a stored config with a method's section still loads without it,
    kept as stored until the method is registered and types it."""
    import subprocess
    import sys

    code = (
        "import sys; import worldmodels.config, worldmodels.methods, worldmodels.runs; "
        "print(sorted(m for m in sys.modules if m.startswith('worldmodels.methods.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    names = {"classic", "dream", "a2c", "wm_ppo", "mpc", "ppo", "dreamer"}
    assert not {f"worldmodels.methods.{n}" for n in names} & set(eval(out.stdout))
    assert list(REGISTRY)[:6] == ["classic", "dream", "a2c", "wm-ppo", "mpc", "ppo"]


def test_a_stored_config_with_a_method_section_loads_without_the_registry(tmp_path):
    """Library use (e.g. `compare` on a ppo run) reads config.yaml before anything has
    registered the methods: their sections are kept, not refused, and typed on first use."""
    import subprocess
    import sys

    (tmp_path / "config.yaml").write_text("method: ppo\nppo:\n  n_envs: 3\n")
    code = (
        "import sys; from worldmodels.config import to_dict; "
        "from worldmodels.runs import RunDir; "
        f"cfg = RunDir({str(tmp_path)!r}).load_config(); "
        "assert 'worldmodels.registry' not in sys.modules; "
        "assert to_dict(cfg)['ppo'] == {'n_envs': 3}, to_dict(cfg); "
        "import worldmodels.registry; "
        "from worldmodels.training.ppo_baseline import PpoConfig; "
        "ppo = cfg.section(PpoConfig); print(ppo.n_envs, ppo.n_steps)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3 2048"


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("controller.generations=0", r"controller\.generations=0 is out of range: it must be >= 1"),
        ("evaluate.batch_envs=0", r"evaluate\.batch_envs=0 is out of range"),
        ("vision.hidden_dims=[-5]", r"vision\.hidden_dims=\[-5\] is out of range: each entry"),
        ("controller.sigma=1e308", r"controller\.sigma=1e\+308 is out of range: .*\(0, 1000\]"),
        ("vision.lr=inf", r"vision\.lr=inf is not finite"),
        ("memory.step_weights=[1.0, nan]", r"memory\.step_weights=\[1\.0, nan\] is not finite"),
        ("ac.gamma=1.5", r"ac\.gamma=1\.5 is out of range: it must be \[0, 1\]"),
        ("ppo.learning_rate=0", r"ppo\.learning_rate=0\.0 is out of range: it must be \(0, 1\]"),
        ("memory.epochs=-1", r"memory\.epochs=-1 is out of range: it must be >= 0"),
    ],
)
def test_every_number_is_checked_before_work(assignment, message):
    """The generic rule: sizes and budgets >= 1, floats finite and in range, list entries too."""
    with pytest.raises(UserError, match=message):
        resolve("CartPole-v1", [], {}, parse_set([assignment]))


def test_signed_numbers_stay_allowed():
    cfg = resolve(
        "CartPole-v1", [], {}, parse_set(["ppo.log_std_init=-2", "ac.target_return=-100"])
    )
    assert cfg.section(PpoConfig).log_std_init == -2.0
    assert cfg.section(ActorCriticConfig).target_return == -100.0


def test_a_stored_config_reads_retired_settings_at_off_and_refuses_them_on(tmp_path, capsys):
    """A run's config.yaml written by a version that had them names the retired settings
    (config/retired.py) at their off values: they are dropped as it is read, and the run reads
    as today's. One at another value refuses the run in one line: this version cannot do what
    it did."""
    import yaml

    from worldmodels.cli import main
    from worldmodels.config import dump_yaml, to_dict
    from worldmodels.runs import RunDir

    today = resolve("CartPole-v1", ["debug"], {}, parse_set(["method=dreamer"]))
    stored = yaml.safe_load(dump_yaml(today))
    stored["dreamer"].update(
        entropy_floor=0.0, entropy_floor_steps=0, entropy_lr=0.05, explore_eps=0.0,
        explore_exponent=2.0, end_balance=False, prio_fraction=0.0, prio_exponent=0.8,
    )  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(stored))
    assert to_dict(RunDir(tmp_path).load_config()) == to_dict(today)
    assert "prio_fraction" in yaml.safe_load((tmp_path / "config.yaml").read_text())["dreamer"]
    stored["dreamer"]["prio_fraction"] = 0.5
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(stored))
    assert main(["evaluate", "--run-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "was made with dreamer.prio_fraction=0.5, a setting this version no longer has" in err


def test_a_new_run_s_spec_is_the_env_its_sized_entry_made():
    """A pixel env with no dreamer entry gets 32x32 frames from its observation kind's entry:
    the run's spec (which sizes the replay and the models) says 32x32, not the 64x64 the env
    was first probed at to learn its kind."""
    from worldmodels.pipeline import resolve_new

    cfg, spec = resolve_new("ALE/Breakout-v5", [], {}, {"method": "dreamer"})
    assert cfg.env.image_size == 32 and spec.obs_shape == (32, 32, 3)
    cfg, spec = resolve_new("ALE/Breakout-v5", [], {}, {"method": "ppo"})
    assert cfg.env.image_size == 64 and spec.obs_shape == (64, 64, 3)
