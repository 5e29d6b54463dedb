"""The main flows of the full-screen app, driven with Pilot at 80x24 on simulated GPUs."""

from __future__ import annotations

from pathlib import Path

from tests.tui.conftest import open_the_one_profile, text_of, wait_for

SIZE = (80, 24)


async def test_gpus_screen_shows_each_gpu_and_planning_mode(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query("GpuCard")) == 2)
        banner = text_of(app.screen.query_one("#mode-banner"))
        assert "PLANNING MODE" in banner and "2xH100-80GB" in banner
        card = text_of(app.screen.query_one("#gpu-0"))
        assert "GPU 0" in card and "H100" in card and "/79.6 GiB" in card
        assert "util" in card and "W" in card
        assert "2 GPUs" in text_of(app.screen.query_one("#host-line"))


async def test_bad_simulation_spec_is_shown_not_a_crash(make_app):
    app = make_app("3xNOPE")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.source == "unavailable")
        banner = text_of(app.screen.query_one("#mode-banner"))
        assert "PLANNING MODE" in banner and "NOPE" in banner
        await pilot.press("w")  # the wizard still works, against unknown capacity
        await wait_for(pilot, lambda: app.current_mode == "wizard")


async def test_unknown_model_gets_a_did_you_mean(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        await pilot.press("w")
        await wait_for(pilot, lambda: app.screen.focused is not None
                       and app.screen.focused.id == "model")
        await pilot.press(*"llama-3-8")
        status = lambda: text_of(app.screen.query_one("#model-status"))  # noqa: E731
        await wait_for(pilot, lambda: "llama-3-8b" in status())
        assert "unknown model" in status().lower() or "did you mean" in status().lower()


async def _choose(pilot, select_id: str, value) -> None:
    """Pick a value in a form Select the way a user does: focus it, open it, move, Enter."""
    from textual.widgets import Select

    select = pilot.app.screen.query_one(f"#{select_id}", Select)
    select.focus()
    await pilot.press("enter")
    options = [v for _, v in select._options]
    steps = options.index(value) - options.index(select.value)
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps), "enter")
    await wait_for(pilot, lambda: select.value == value)


async def test_save_profile_then_open_it_from_the_profiles_screen(make_app, isolated_env):
    from trainwiz.profiles import load_profile

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        await pilot.press("w")
        await wait_for(pilot, lambda: app.screen.focused and app.screen.focused.id == "model")
        await pilot.press(*"llama-3-8b")
        wizard = app.screen
        await wait_for(pilot, lambda: wizard.model is not None)
        await _choose(pilot, "strategy", "fsdp")
        assert wizard.query_one("#row-sharding").display
        await _choose(pilot, "sharding", "SHARD_GRAD_OP")
        await _choose(pilot, "batch", 4)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
        await pilot.press(*"fsdp-test", "enter")
        saved = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles" / "fsdp-test.yaml"
        await wait_for(pilot, saved.exists)
        profile = load_profile("fsdp-test")
        assert profile.strategy == "fsdp"
        assert profile.fsdp.sharding_strategy == "SHARD_GRAD_OP"
        assert profile.mixed_precision == "bf16"  # H100s: bf16 is the default offered
        assert profile.estimate.model == "llama-3-8b" and profile.estimate.batch_size == 4

        # the list shows it with a one-line summary; Enter opens it in a fresh-looking wizard
        await _choose(pilot, "strategy", "ddp")
        wizard.set_focus(None)
        await pilot.press("p")
        await wait_for(pilot, lambda: app.current_mode == "profiles")
        table = app.screen.query_one("DataTable")
        await wait_for(pilot, lambda: table.row_count == 1)
        row = [str(c) for c in table.get_row_at(0)]
        assert row[0] == "fsdp-test" and "fsdp2 SHARD_GRAD_OP" in row[2] and "llama-3-8b" in row[2]
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "wizard")
        await wait_for(pilot, lambda: wizard.config.strategy == "fsdp")
        assert wizard.config.sharding == "SHARD_GRAD_OP" and wizard.config.batch_size == 4
        assert wizard.query_one("#model").value == "llama-3-8b"


async def test_damaged_profile_is_listed_as_such_and_delete_asks_first(make_app, isolated_env):
    folder = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    folder.mkdir(parents=True)
    (folder / "broken.yaml").write_text("strategy: warp-drive\n")
    (folder / "good.yaml").write_text("strategy: ddp\n")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        table = app.screen.query_one("DataTable")
        await wait_for(pilot, lambda: table.row_count == 2)
        rows = {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[2]) for i in range(2)}
        assert rows["broken"].startswith("DAMAGED") and "strategy" in rows["broken"]
        assert "ddp" in rows["good"]
        assert "1 damaged" in text_of(app.screen.query_one("#profiles-status"))
        table.focus()
        table.move_cursor(row=[str(table.get_row_at(i)[0]) for i in range(2)].index("broken"))
        await pilot.press("enter")  # a damaged file cannot be opened: it says why
        await pilot.pause(0.1)
        assert app.current_mode == "profiles"
        await pilot.press("x")
        await wait_for(pilot, lambda: app.screen.query("ConfirmScreen") or
                       type(app.screen).__name__ == "ConfirmScreen")
        await pilot.press("n")
        await pilot.pause(0.2)
        assert (folder / "broken.yaml").exists()
        await pilot.press("x")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen")
        await pilot.press("y")
        await wait_for(pilot, lambda: not (folder / "broken.yaml").exists())
        await wait_for(pilot, lambda: table.row_count == 1)
        assert (folder / "good.yaml").exists()


async def test_wizard_estimate_follows_the_form_and_a_suggestion_applies_with_one_key(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        await pilot.press("w")
        await wait_for(pilot, lambda: app.screen.focused and app.screen.focused.id == "model")
        wizard = app.screen
        await pilot.press(*"llama-3-8b")
        await wait_for(pilot, lambda: wizard.fits)
        panel = wizard.query_one("#memory")
        ddp = wizard.current_estimate()
        assert [row.label for row in wizard.fits] == ["GPU0-1"]  # identical GPUs: one row
        text = text_of(panel)
        assert "GPU0-1" in text and "params" in text and "optim" in text
        words = {"fits": "FITS", "tight": "TIGHT", "does not fit": "DOES NOT FIT"}
        assert words[ddp.verdict] in text  # the verdict is spelled out, not only coloured

        await _choose(pilot, "strategy", "fsdp")
        await wait_for(pilot, lambda: wizard.current_estimate().config.strategy == "fsdp")
        fsdp = wizard.current_estimate()
        assert fsdp.per_gpu.total < ddp.per_gpu.total  # sharding shows at once
        assert f"{fsdp.per_gpu.total / 2**30:.1f}" in text_of(panel)

        # the suggestions are numbered (those that fit fastest first, as the CLI ranks them);
        # one key applies the one shown under 1
        assert fsdp.suggestions, "an 8B model on 2 GPUs should come with suggestions"
        first = wizard.result.suggestions[0]
        assert "1 " in text_of(panel) and first.note in " ".join(text_of(panel).split())
        wizard.set_focus(None)
        await pilot.press("1")
        await wait_for(pilot, lambda: all(getattr(wizard.config, k) == v
                                          for k, v in first.change.items()))
        after = wizard.current_estimate()
        assert after.per_gpu.total == first.total
        from trainwiz.tui.widgets.plan_form import FIELDS

        select_for = {f.key: f.id for f in FIELDS}
        for key, value in first.change.items():  # the form shows the applied values
            if key in select_for:
                assert wizard.query_one(f"#{select_for[key]}").value == value


async def test_without_gpus_the_app_plans_with_unknown_capacity(make_app, monkeypatch):
    import sys

    from tests.hardware import fake_nvml

    # a machine without an NVIDIA driver, also on a GPU box (NVML answers as it does there)
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.build(fake_nvml.NO_DRIVER))
    app = make_app(None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.source == "none")
        banner = text_of(app.screen.query_one("#mode-banner"))
        assert "PLANNING MODE" in banner and "--simulate" in banner
        assert "No GPUs to show" in text_of(app.screen.query_one(".hint"))
        await pilot.press("w")
        await wait_for(pilot, lambda: app.current_mode == "wizard")
        app.screen.set_model("gpt2")
        await wait_for(pilot, lambda: app.screen.fits)
        assert "UNKNOWN" in text_of(app.screen.query_one("#memory"))
        # plan for a card this laptop does not have
        wizard = app.screen
        await wait_for(pilot, lambda: wizard.presets)
        await _choose(pilot, "plan-for", "A100-40GB")
        await wait_for(pilot, lambda: wizard.current_estimate().gpu_memory is not None)
        text = text_of(wizard.query_one("#memory"))
        assert "planning for A100-40GB" in text and "/40.0" in text
        assert any(w in text for w in ("FITS", "TIGHT", "DOES NOT FIT"))


async def test_duplicate_and_export_a_profile(make_app, isolated_env, monkeypatch, tmp_path):
    import yaml

    from tests.tui.fixtures import write_profiles

    folder = write_profiles(Path(isolated_env["XDG_CONFIG_HOME"]))
    monkeypatch.chdir(tmp_path)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        table = app.screen.query_one("DataTable")
        await wait_for(pilot, lambda: table.row_count == 3)
        names = [str(table.get_row_at(i)[0]) for i in range(3)]
        table.focus()
        table.move_cursor(row=names.index("llama-fsdp"))
        await pilot.press("d")
        await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
        assert app.screen.query_one("#prompt-input").value == "llama-fsdp-copy"
        await pilot.press("enter")
        await wait_for(pilot, lambda: table.row_count == 4)
        copy = folder / "llama-fsdp-copy.yaml"
        assert copy.read_text() == (folder / "llama-fsdp.yaml").read_text()

        table.move_cursor(row=[str(table.get_row_at(i)[0]) for i in range(4)].index("llama-fsdp"))
        await pilot.press("e")
        await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
        await pilot.press("enter")
        exported = tmp_path / "llama-fsdp.accelerate.yaml"
        await wait_for(pilot, exported.exists)
        config = yaml.safe_load(exported.read_text())
        assert config["distributed_type"] == "FSDP" and config["mixed_precision"] == "bf16"


async def test_launch_preflight_names_what_is_wrong(make_app, isolated_env):
    from tests.tui.fixtures import write_profiles

    write_profiles(Path(isolated_env["XDG_CONFIG_HOME"]))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        launch = app.screen
        await wait_for(pilot, lambda: "cpu-ddp" in launch.profiles)
        await pilot.press("ctrl+t")
        status = lambda: text_of(launch.query_one("#launch-status"))  # noqa: E731
        await wait_for(pilot, lambda: "Choose a profile" in status())
        launch.query_one("#launch-profile").value = "cpu-ddp"
        launch.query_one("#launch-script").value = "no-such-train.py"
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "no such training script" in status(), timeout=30)
        assert app.current_mode == "launch"  # nothing was launched


async def test_an_oom_run_offers_the_change_that_fits_in_the_wizard(make_app, isolated_env):
    from tests.tui.fixtures import write_failed_run

    run_dir = write_failed_run(Path(isolated_env["XDG_STATE_HOME"]))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        app.open_monitor(run_dir)
        await wait_for(pilot, lambda: type(app.screen).__name__ == "MonitorScreen")
        monitor = app.screen
        await wait_for(pilot, lambda: monitor.plan is not None and monitor.status is not None)
        failure = text_of(monitor.query_one("#run-failure"))
        # the words `trainwiz runs` and `runs show` print for this run
        assert ("FAILED — rank 1: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
                "1.96 GiB (exit code 1, out of memory)") in failure
        fix = monitor.plan.fix
        assert fix is not None and fix.fits and "press f" in failure
        await pilot.press("f")
        await wait_for(pilot, lambda: app.current_mode == "wizard")
        wizard = app.screen
        await wait_for(pilot, lambda: all(getattr(wizard.config, k) == v
                                          for k, v in fix.change.items()))
        assert wizard.query_one("#model").value == "llama-3-8b"
        await wait_for(pilot, lambda: wizard.current_estimate() is not None)
        assert wizard.current_estimate().fits


async def test_model_field_completes_catalog_names_and_paths(make_app, tmp_path):
    from trainwiz.tui.widgets.model_suggester import ModelSuggester

    (tmp_path / "my-model").mkdir()
    (tmp_path / "my-model" / "config.json").write_text("{}")
    suggester = ModelSuggester(["llama-3-8b", "mistral-7b"])
    assert await suggester.get_suggestion("mist") == "mistral-7b"
    assert await suggester.get_suggestion("MIST") == "mistral-7b"
    assert await suggester.get_suggestion(f"{tmp_path}/my") == f"{tmp_path}/my-model/"
    assert await suggester.get_suggestion(f"{tmp_path}/my-model/c") == \
        f"{tmp_path}/my-model/config.json"

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        await wait_for(pilot, lambda: app.screen.focused and app.screen.focused.id == "model")
        await wait_for(pilot, lambda: app.screen.catalog)
        await pilot.press(*"llama-3-8", "right")  # Right accepts the completion
        await wait_for(pilot, lambda: app.screen.query_one("#model").value == "llama-3-8b")


async def test_editing_a_profile_keeps_what_the_form_does_not_show(make_app, isolated_env):
    from trainwiz.profiles import load_profile

    folder = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    folder.mkdir(parents=True)
    (folder / "pinned.yaml").write_text(
        "version: 1\nstrategy: fsdp\nmixed_precision: fp8\ngpu_ids: [1]\n"
        "python: /opt/venv/bin/python\nenv: {NCCL_DEBUG: INFO}\nscript: train.py\n"
        "estimate:\n  model: gpt2\n  seq_len: 1024\n")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        wizard = await open_the_one_profile(pilot, app)
        await wait_for(pilot, lambda: wizard.fits and wizard.config.num_gpus == 1)
        assert wizard.config.seq_len == 1024 and wizard.query_one("#seq-len").value == 1024
        assert [f.label for f in wizard.fits] == ["GPU1"]  # the GPU the profile names
        wizard.apply_changes({"batch_size": 8})
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
        assert app.screen.query_one("#prompt-input").value == "pinned"
        await pilot.press("enter")  # its own name: saved back without a question
        await wait_for(pilot, lambda: load_profile("pinned").estimate.batch_size == 8)
        saved = load_profile("pinned")
        assert saved.gpu_ids == [1] and saved.mixed_precision == "fp8"
        assert saved.python == "/opt/venv/bin/python" and saved.env == {"NCCL_DEBUG": "INFO"}
        assert saved.script == "train.py" and saved.estimate.seq_len == 1024

        # another name that exists: asked first, and "no" leaves the file alone
        before = (folder / "pinned.yaml").read_text()
        wizard.base_profile = None
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
        app.screen.query_one("#prompt-input").value = "pinned"
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen")
        await pilot.press("n")
        await pilot.pause(0.2)
        assert (folder / "pinned.yaml").read_text() == before


async def test_launch_a_profile_from_the_profiles_screen(make_app, isolated_env):
    folder = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    folder.mkdir(parents=True)
    (folder / "scripted.yaml").write_text("version: 1\nstrategy: ddp\ndevice: cpu\n"
                                          "script: train.py\nscript_args: [--lr, '1e-4']\n")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        table = app.screen.query_one("DataTable")
        await wait_for(pilot, lambda: table.row_count == 1)
        await pilot.press("L")
        await wait_for(pilot, lambda: app.current_mode == "launch")
        launch = app.screen
        await wait_for(pilot, lambda: launch.query_one("#launch-profile").value == "scripted")
        assert launch.query_one("#launch-script").value == "train.py"
        assert launch.query_one("#launch-args").value == "--lr 1e-4"


async def test_launch_warns_when_the_estimate_does_not_fit(make_app, isolated_env, tmp_path):
    import sys

    folder = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    folder.mkdir(parents=True)
    (folder / "too-big.yaml").write_text(
        f"version: 1\nstrategy: ddp\npython: {sys.executable}\n"
        "estimate:\n  model: llama-3-8b\n  seq_len: 4096\n")
    (tmp_path / "train.py").write_text("print('hi')\n")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        launch = app.screen
        await wait_for(pilot, lambda: "too-big" in launch.profiles)
        launch.query_one("#launch-profile").value = "too-big"
        launch.query_one("#launch-script").value = str(tmp_path / "train.py")
        await pilot.press("ctrl+t")
        status = lambda: text_of(launch.query_one("#launch-status"))  # noqa: E731
        await wait_for(pilot, lambda: "GiB per GPU" in status(), timeout=30)
        assert "Press Launch again to launch anyway" in status()
        assert app.current_mode == "launch"  # nothing launched


async def test_duplicating_onto_an_existing_profile_asks_not_use_force(make_app, isolated_env):
    """The toast said '… already exists; use --force to overwrite it': a CLI flag the app has
    no place for. The app asks instead, and keeps the file unless told to replace it."""
    from tests.tui.fixtures import write_profiles
    from trainwiz.tui.screens.confirm import ConfirmScreen

    folder = write_profiles(Path(isolated_env["XDG_CONFIG_HOME"]))
    target = folder / "cpu-ddp.yaml"
    before = target.read_text()
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("p")
        profiles = app.screen
        table = profiles.query_one("DataTable")
        await wait_for(pilot, lambda: table.row_count == 3)
        names = [str(table.get_row_at(i)[0]) for i in range(3)]
        for answer in ("n", "y"):
            table.focus()
            table.move_cursor(row=names.index("llama-fsdp"))
            await pilot.press("d")
            await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
            app.screen.query_one("#prompt-input").value = "cpu-ddp"
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert f"{target} exists. Replace it?" in app.screen.question
            await pilot.press(answer)
            await wait_for(pilot, lambda: app.screen is profiles)
            if answer == "n":
                await pilot.pause(0.2)
                assert target.read_text() == before
        await wait_for(pilot, lambda: target.read_text() == (folder / "llama-fsdp.yaml").read_text())
        toasts = " ".join(str(text_of(t)) for t in app.screen.query("Toast"))
        assert "--force" not in toasts


async def test_the_micro_batch_is_not_only_a_power_of_two(make_app, isolated_env):
    """The micro-batch offered 1, 2, 4, 8…: a batch of 3 or 6 (what fits between two powers of
    two) could not be chosen. It is offered, priced and saved."""
    from trainwiz.profiles import load_profile

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        await pilot.press("w")
        await wait_for(pilot, lambda: app.screen.focused and app.screen.focused.id == "model")
        await pilot.press(*"gpt2")
        wizard = app.screen
        await wait_for(pilot, lambda: wizard.model is not None)
        await _choose(pilot, "batch", 3)
        await wait_for(pilot, lambda: wizard.result is not None
                       and wizard.result.estimate.config.batch_size == 3)
        wizard.set_focus(None)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
        await pilot.press(*"batch3", "enter")
        saved = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles" / "batch3.yaml"
        await wait_for(pilot, saved.exists)
        assert load_profile("batch3").estimate.batch_size == 3
