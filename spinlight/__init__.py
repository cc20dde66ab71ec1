"""spinlight: instrument control and acquisition for molecular magnetism and NIR photophysics.

The thin top package: CLI, campaign files, RunEngine assembly and storage. The four layers are
installed as subpackages: ``spinlight.instruments``, ``spinlight.plans``, ``spinlight.analysis``
and ``spinlight.simulators``.
"""

__version__ = "0.1.0"
