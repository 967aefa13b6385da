"""A faithful WeCom API simulator: try everything without a WeCom account, and test the real HTTP path."""

from alertmanager_wecom.simulator.model import SimApp, SimCorp, SimulatorSettings, sandbox_settings
from alertmanager_wecom.simulator.server import create_simulator_app
from alertmanager_wecom.simulator.state import SimulatorState

__all__ = [
    "SimApp",
    "SimCorp",
    "SimulatorSettings",
    "SimulatorState",
    "create_simulator_app",
    "sandbox_settings",
]
