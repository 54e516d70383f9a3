"""Every config file: loads, documents the command that runs it, and passes the run's config checks
(for each variant its docstring names, and for each arm of a sweep)."""

import glob
import importlib.util
import os
import re

import pytest

from conftest import REPO
from zerodiverse import sweep
from zerodiverse.run import check_config

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))


def load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def variants(path, doc):
  name = os.path.basename(path)
  return [None] + sorted(set(re.findall(rf"configs/{re.escape(name)}:([a-z0-9_,=]+)", doc)))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_documents_its_command_and_every_variant_is_valid(path):
  module = load(path)
  doc = module.__doc__ or ""
  assert f"launch.py --config configs/{os.path.basename(path)}" in doc, "docstring lacks the command"
  assert "xpect" in doc, "docstring lacks what to expect"
  for variant in variants(path, doc):
    config = module.get_config(variant) if variant else module.get_config()
    runs = sweep.arm_configs(config).values() if "arms" in config or "grid" in config else [config]
    for run in runs:
      check_config(run)


def test_the_configs_this_project_promises_exist():
  names = {os.path.basename(p) for p in CONFIGS}
  assert {"quickstart.py", "constnet_cifar10.py"} <= names
