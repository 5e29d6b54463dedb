"""The wizard keeps the plan the user chose (more GPUs than the box has become machines), judges
every GPU of a mixed box, groups identical GPUs, keeps the verdict in sight at 80×24, and does
not turn letters typed in a form into commands."""

from __future__ import annotations

import re
from pathlib import Path

from tests.tui.conftest import open_the_one_profile, text_of, wait_for


async def _wizard_with(pilot, app, model: str):
    await wait_for(pilot, lambda: app.gpus)
    app.screen.set_focus(None)
    await pilot.press("w")
    await wait_for(pilot, lambda: app.current_mode == "wizard")
    wizard = app.screen
    await wait_for(pilot, lambda: wizard.plan.box.size == len(app.gpus))
    wizard.set_model(model)
    await wait_for(pilot, lambda: wizard.result is not None)
    return wizard


async def test_32_gpus_stay_32_through_tab_and_save(make_app, isolated_env):
    from trainwiz.profiles import load_profile

    app = make_app("8xH100-80GB")
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await _wizard_with(pilot, app, "llama-3-70b")
        wizard.apply_changes({"strategy": "fsdp", "loop": "trainer"})
        await wait_for(pilot, lambda: any(s.change.get("num_gpus", 0) > 8
                                          for s in wizard.result.suggestions))
        counts = [s.change.get("num_gpus", 0) for s in wizard.result.suggestions]
        number, wanted = next((i, n) for i, n in enumerate(counts, 1) if n > 8)
        wizard.set_focus(None)
        await pilot.press(str(number))  # a suggestion beyond this box: more machines
        await wait_for(pilot, lambda: wizard.config.num_gpus == wanted)
        assert wizard.query_one("#machines").value == wanted // 8
        assert wizard.query_one("#num-gpus").value == 8
        wizard.query_one("#machines").value = 4  # as a user picks it: 32 GPUs
        await wait_for(pilot, lambda: wizard.config.num_gpus == 32)
        await pilot.press("tab", "tab", "tab")
        await wait_for(pilot, lambda: "4 machines × 8" in text_of(wizard.query_one("#memory")))
        assert wizard.config.num_gpus == 32 and wizard.plan.machines == 4
        panel = text_of(wizard.query_one("#memory"))
        assert "4 machines × 8" in panel and "needed per GPU" in panel
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
        await pilot.press(*"big-run", "enter")
        await wait_for(pilot, lambda: "Machine 0's address" in str(getattr(
            app.screen, "question", "")))  # 4 machines: launch needs where machine 0 listens
        await pilot.press(*"node-0:29500", "enter")
        await wait_for(pilot, lambda: (Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz"
                                       / "profiles" / "big-run.yaml").exists())
        saved = load_profile("big-run")
        assert saved.num_machines == 4 and saved.world_size == 32 and saved.gpu_ids is None
        assert saved.hardware.gpus_per_machine == 8


async def test_mixed_box_verdict_is_against_the_smallest_gpu(make_app):
    app = make_app("4xA100-80GB+4xL4")
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await _wizard_with(pilot, app, "llama-3.2-1b")
        wizard.apply_changes({"strategy": "ddp"})
        await wait_for(pilot, lambda: wizard.result is not None
                       and wizard.result.estimate.config.strategy == "ddp")
        text = " ".join(text_of(wizard.query_one("#memory")).split())
        assert "DOES NOT FIT" in text and "of 22.5 GiB" in text and "80.0 GiB needed" not in text
        assert [r.label for r in wizard.fits] == ["GPU0-3", "GPU4-7"]
        assert "leave out GPUs 4,5,6,7" in text


async def test_identical_gpus_are_one_row_and_the_verdict_stays_on_screen(make_app):
    app = make_app("8xH100-80GB")
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await _wizard_with(pilot, app, "llama-3-8b")
        wizard.apply_changes({"num_gpus": 32, "strategy": "fsdp"})
        await wait_for(pilot, lambda: [r.count for r in wizard.fits] == [32])
        panel = wizard.query_one("#memory")
        lines = text_of(panel).splitlines()
        verdict_line = next(i for i, line in enumerate(lines) if "GiB needed per GPU" in line)
        # the verdict is drawn within the panel's visible rows at 80×24 (no scrolling)
        assert verdict_line < wizard.query_one("#memory-scroll").size.height
        assert "32 × NVIDIA H100 80GB HBM3 (4 machines × 8)" in " ".join(lines)
        assert "simulated" in text_of(panel)


async def test_letters_typed_in_the_form_are_not_commands(make_app):
    app = make_app("8xH100-80GB")
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await _wizard_with(pilot, app, "gpt2")
        wizard.query_one("#strategy").focus()
        await pilot.pause(0.05)
        # the field with focus shows it without colour: its label is drawn reversed
        label = wizard.query_one("#row-strategy .field-label")
        assert label.rich_style.reverse
        assert not wizard.query_one("#row-precision .field-label").rich_style.reverse
        await pilot.press(*"llama-3-70b", "q", "p", "g", "r")
        await pilot.pause(0.1)
        assert app.current_mode == "wizard" and app.is_running
        await pilot.press("escape")  # out of the field: the letters switch screens again
        await pilot.press("p")
        await wait_for(pilot, lambda: app.current_mode == "profiles")


async def test_a_profile_planned_for_another_box_says_so(make_app, isolated_env):
    folder = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    folder.mkdir(parents=True)
    (folder / "h100x8.yaml").write_text(
        "version: 1\nstrategy: fsdp\nmixed_precision: bf16\nnum_processes: 8\n"
        "estimate: {model: llama-3-8b}\n"
        "hardware: {gpu: NVIDIA H100 80GB HBM3, gpu_memory: 85520809984, gpus_per_machine: 8,"
        " simulated: true}\n")
    app = make_app("2xH100-80GB")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        wizard = await open_the_one_profile(pilot, app)
        await wait_for(pilot, lambda: wizard.result is not None)
        assert wizard.config.num_gpus == 8 and wizard.result.verdict == "fits"
        text = " ".join(text_of(wizard.query_one("#memory")).split())
        assert "Planned for 8× NVIDIA H100 80GB HBM3 (simulated)" in text
        assert "this box has 2× NVIDIA H100 80GB HBM3" in text


async def test_a_refused_profile_name_is_asked_again_with_what_was_typed(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await _wizard_with(pilot, app, "gpt2")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
        await pilot.press(*"my run!", "enter")
        await wait_for(pilot, lambda: app.screen.query("#prompt-error"))
        assert app.screen.query_one("#prompt-input").value == "my run!"
        assert "not allowed" in text_of(app.screen.query_one("#prompt-error"))
        assert wizard.plan.model == "gpt2"


async def test_a_model_file_that_is_not_json_is_not_called_not_found(make_app, tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        await pilot.press("w")
        wizard = app.screen
        wizard.set_model(str(bad))
        await wait_for(pilot, lambda: "not valid JSON" in text_of(wizard.query_one("#memory")))
        text = " ".join(text_of(wizard.query_one("#memory")).split())
        assert "not valid JSON" in text and "not found" not in text


def test_the_profiles_list_says_how_many_gpus_and_what_they_were_planned_for():
    from trainwiz.profiles import PlannedHardware, Profile
    from trainwiz.profiles.summary import profile_summary

    line = profile_summary(Profile(name="big", strategy="fsdp", num_processes=8, num_machines=4,
                           main_address=None, hardware=PlannedHardware(
                               gpu="NVIDIA H100 80GB HBM3", gpu_memory=85520809984,
                               gpus_per_machine=8, simulated=True)), details=True)
    assert "8 GPUs × 4 machines" in line and "for H100 80GB HBM3 (simulated)" in line


async def test_the_training_length_gives_a_run_time_and_is_saved(make_app, isolated_env):
    from trainwiz.profiles import load_profile

    app = make_app("8xH100-80GB")
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await _wizard_with(pilot, app, "llama-3-8b")
        wizard.apply_changes({"strategy": "fsdp"})
        await wait_for(pilot, lambda: wizard.result is not None)
        assert "tokens/s" in text_of(wizard.query_one("#memory"))
        wizard.query_one("#train-for").value = 10**9
        await wait_for(pilot, lambda: "to train 1,000,000,000 tokens" in text_of(
            wizard.query_one("#memory")))
        assert "to train 1,000,000,000 tokens: about" in text_of(wizard.query_one("#memory"))
        wizard.set_focus(None)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
        await pilot.press(*"timed", "enter")
        await wait_for(pilot, lambda: (Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz"
                                       / "profiles" / "timed.yaml").exists())
        assert load_profile("timed").estimate.tokens == 10**9


async def test_lora_and_qlora_show_frozen_4bit_and_adapter_segments_and_trainable_count(make_app):
    from trainwiz.tui.widgets.memory_panel import MemoryPanel

    app = make_app("1x4090")
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await _wizard_with(pilot, app, "llama-3-8b")
        panel = wizard.query_one(MemoryPanel)
        full = text_of(panel)
        assert not re.search(r"trainable [\d.]+[KMB] of", full) and "+ adapters" not in full
        assert "change of method" in full and "quality" in full  # QLoRA offered as a method change
        wizard.apply_changes({"method": "qlora", "precision": "bf16",
                              "activation_checkpointing": True, "lora_rank": 16})
        await wait_for(pilot, lambda: wizard.result is not None
                       and wizard.result.estimate.config.method == "qlora")
        await pilot.pause()
        text = text_of(panel)
        per_gpu = wizard.result.estimate.per_gpu
        assert per_gpu.quantized_params > 0 and per_gpu.adapter_params > 0
        assert "▞ 4-bit" in text and "+ adapters" in text
        assert "▞" in text and "+" in text  # their own glyphs in the bars, not only the legend
        assert "trainable 41.94M of 8.07B parameters (0.52%)" in text
        assert "FITS" in text


async def test_the_wizard_says_a_size_as_the_cli_does(make_app):
    """The same estimate reads the same in the app and in ``trainwiz estimate``: 1.8 TiB, not
    1871.7 GiB beside the CLI's 1.8 TiB."""
    from trainwiz.cli.render import verdict_line

    app = make_app("8xH100-80GB")
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await _wizard_with(pilot, app, "llama-3-70b")
        wizard.apply_changes({"strategy": "ddp"})
        await wait_for(pilot, lambda: wizard.result.estimate.config.strategy == "ddp"
                       and "DDP" in text_of(wizard.query_one("#memory")))
        text = " ".join(text_of(wizard.query_one("#memory")).split())
        cli = verdict_line(wizard.result.estimate)  # "does not fit: needs 1.8 TiB of 79.6 GiB ..."
        needed = re.search(r"needs (\S+ \S+) of (\S+ \S+)", cli)
        assert needed.group(1).endswith("TiB")
        assert f"{needed.group(1)} needed per GPU of {needed.group(2)}" in text
        assert not re.search(r"\d{4}\.\d GiB", text)  # no size in four-digit GiB anywhere


async def test_the_hardware_choice_is_whole_or_ends_in_an_ellipsis_beside_the_fsdp_rows(
        make_app):
    """At 80×24 the FSDP rows bring a scrollbar to the form; the chosen hardware still reads
    whole ("this box (8 GPUs)"), and one too long for the field ends in "…"."""
    for box, shown in (("8xH100-80GB", "this box (8 GPUs)"), ("16xH100-80GB", "this box (16 GPU…")):
        app = make_app(box)
        async with app.run_test(size=(80, 24)) as pilot:
            wizard = await _wizard_with(pilot, app, "llama-3-8b")
            wizard.apply_changes({"strategy": "fsdp"})
            await wait_for(pilot, lambda: wizard.query_one("#row-sharding").display
                           and wizard.result.estimate.config.strategy == "fsdp")
            label = wizard.query_one("#plan-for SelectCurrent #label")
            await wait_for(pilot, lambda: label.render_line(0).text.strip() == shown)
            assert label.render_line(0).text.strip() == shown


async def test_a_faster_suggestion_is_never_called_slower(make_app):
    """On one B200, llama-3-8b runs at ~13,100 tokens/s; 8-bit AdamW makes ~19,300 and fused
    AdamW ~16,400 (as `trainwiz estimate` says), yet the panel said '~1.7× slower' and
    '~2.0× slower': it measured against the fastest suggestion, not the current plan."""
    app = make_app("8xB200")
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await _wizard_with(pilot, app, "llama-3-8b")
        wizard.apply_changes({"strategy": "single"})
        await wait_for(pilot, lambda: wizard.result.estimate.config.strategy == "single"
                       and "8-bit AdamW" in text_of(wizard.query_one("#memory")))
        lines = text_of(wizard.query_one("#memory")).splitlines()
        eight_bit = next(line for line in lines if re.match(r"\d\s+8-bit AdamW", line))
        fused = next(line for line in lines if re.match(r"\d\s+fused AdamW", line))
        offload = next(line for line in lines if "CPU offload" in line)
        assert "slower" not in eight_bit and re.search(r"~19,\d00 tokens/s", eight_bit)
        assert "slower" not in fused and re.search(r"~16,\d00 tokens/s", fused)
        assert re.search(r"~\d+× slower", offload)  # much slower than now: said as a ratio


async def test_a_cpu_profile_opens_as_a_cpu_plan(make_app, isolated_env):
    """A `device: cpu` profile opened as '2 × GPU of unknown memory', 'GPUs/machine 2' and a
    CUDA overhead term: it is its CPU ranks against this machine's RAM, as preflight judges."""
    import psutil

    from trainwiz.units import format_bytes

    folder = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    folder.mkdir(parents=True)
    (folder / "cpu-gpt2.yaml").write_text(
        "version: 1\nstrategy: ddp\ndevice: cpu\nnum_processes: 2\n"
        "estimate: {model: gpt2, seq_len: 512}\n")
    app = make_app("2xH100-80GB")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        wizard = await open_the_one_profile(pilot, app)
        await wait_for(pilot, lambda: "Host memory (CPU ranks, gloo)" in text_of(
            wizard.query_one("#memory")))
        text = " ".join(text_of(wizard.query_one("#memory")).split())
        assert "Host memory (CPU ranks, gloo)" in text and "DDP · 2 CPU ranks" in text
        assert f"of {format_bytes(psutil.virtual_memory().total)} RAM on this machine" in text
        assert "2 CPU ranks ×" in text
        assert "GPU of unknown memory" not in text and "× overhead" not in text
        assert "H100" not in text and "simulated" not in text
        assert str(wizard.query_one("#label-num-gpus").render()) == "CPU ranks"
        # no GPU words: the hardware reads CPU ranks, and "1-9 Apply" is not offered with no
        # suggestion to apply
        label = wizard.query_one("#plan-for SelectCurrent #label")
        await wait_for(pilot, lambda: label.render_line(0).text.strip() == "this box (CPU)")
        assert wizard.plan.device == "cpu" and wizard.plan.box.here
        wizard.set_focus(None)
        await pilot.pause()
        assert "apply" not in {b.binding.action.split("(")[0]
                               for b in wizard.active_bindings.values() if b.enabled}


async def _open_profile(pilot, app, name: str):
    app.screen.set_focus(None)
    await pilot.press("p")
    table = app.screen.query_one("DataTable")
    await wait_for(pilot, lambda: name in [str(table.get_row_at(i)[0])
                                           for i in range(table.row_count)])
    table.focus()
    table.move_cursor(row=[str(table.get_row_at(i)[0]) for i in range(table.row_count)].index(name))
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.current_mode == "wizard")
    wizard = app.screen
    await wait_for(pilot, lambda: wizard.result is not None and wizard.plan.base is not None
                   and wizard.plan.base.name == name)
    return wizard


async def _save_as_opened(pilot, app, wizard) -> None:
    wizard.set_focus(None)
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
    await pilot.press("enter")  # the name offered: the opened profile's


async def test_saving_over_a_hand_written_profile_asks_and_keeps_its_relative_model(
        make_app, isolated_env, tmp_path, monkeypatch):
    """Ctrl+S on an opened hand-written profile replaced it without a word: its comments went
    and 'model: models/tiny' became an absolute path. The app asks (naming what is lost), keeps
    the file on 'Keep it', and on 'Replace' keeps the model path as the user wrote it."""
    import yaml

    from trainwiz.tui.screens.confirm import ConfirmScreen

    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "models" / "tiny" / "config.json").write_text(
        '{"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 2, "vocab_size": 100,'
        ' "n_positions": 128}')
    monkeypatch.chdir(tmp_path)
    folder = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    folder.mkdir(parents=True)
    mine = folder / "mine.yaml"
    hand = ("# my tiny run\nversion: 1\nstrategy: ddp  # two ranks\nnum_processes: 2\n"
            "estimate:\n  model: models/tiny\n  seq_len: 128\n")
    mine.write_text(hand)
    app = make_app("2xH100-80GB")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        wizard = await _open_profile(pilot, app, "mine")
        wizard.apply_changes({"batch_size": 4})
        for answer in ("n", "y"):
            await _save_as_opened(pilot, app, wizard)
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert "Replace it? Its 2 comment lines will be lost." in app.screen.question
            await pilot.press(answer)
            await wait_for(pilot, lambda: app.screen is wizard)
            if answer == "n":
                await pilot.pause(0.2)
                assert mine.read_text() == hand
        await wait_for(pilot, lambda: mine.read_text() != hand)
        data = yaml.safe_load(mine.read_text())
        assert data["estimate"]["model"] == "models/tiny" and data["estimate"]["batch_size"] == 4

        # no comment left: saving it again loses nothing, asks nothing
        wizard.apply_changes({"batch_size": 2})
        await _save_as_opened(pilot, app, wizard)
        await wait_for(pilot, lambda: yaml.safe_load(mine.read_text())["estimate"]
                       .get("batch_size") == 2)
        assert not isinstance(app.screen, ConfirmScreen)


async def test_a_plan_for_several_machines_is_saved_with_machine_0s_address(
        make_app, isolated_env):
    """The app saved a 2-machine profile that `launch` refuses ('needs main_address and
    main_port'): it asks for host:port first, refusing an answer without a valid port."""
    from trainwiz.profiles import load_profile

    app = make_app("2xH100-80GB")
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await _wizard_with(pilot, app, "llama-3-8b")
        wizard.apply_changes({"strategy": "fsdp", "machines": 2})
        await wait_for(pilot, lambda: wizard.plan.machines == 2)
        wizard.set_focus(None)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
        await pilot.press(*"two", "enter")
        await wait_for(pilot, lambda: "Machine 0's address" in str(getattr(
            app.screen, "question", "")))
        await pilot.press(*"node-0", "enter")
        await wait_for(pilot, lambda: app.screen.query("#prompt-error"))
        assert "host:port" in str(app.screen.query_one("#prompt-error").render())
        app.screen.query_one("#prompt-input").value = "my host [bold:29500"  # was saved as is
        await pilot.press("enter")
        await wait_for(pilot, lambda: "host name or IP address" in str(
            app.screen.query_one("#prompt-error").render()))
        app.screen.query_one("#prompt-input").value = "node-0:29500"
        await pilot.press("enter")
        saved = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles" / "two.yaml"
        await wait_for(pilot, saved.exists)
        profile = load_profile("two")
        assert (profile.num_machines, profile.main_address, profile.main_port) == \
            (2, "node-0", 29500)


async def test_what_a_parameter_count_alone_cannot_estimate_reads_unknown(make_app, isolated_env):
    """With params:N there is no architecture: the legend said "activ 0.0" beside the CLI's
    "unknown"; it reads "activ ?" and the others keep their figures."""
    app = make_app("2xH100-80GB")
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await _wizard_with(pilot, app, "params:7000000000")
        await wait_for(pilot, lambda: "activ ?" in text_of(wizard.query_one("#memory")))
        text = " ".join(text_of(wizard.query_one("#memory")).split())
        assert "activ 0.0" not in text and re.search(r"params \d+\.\d", text)
