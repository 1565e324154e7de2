"""Attack tests: a malicious party, written as a test-only script or fixture, tries to win and must fail with a
specific error. docs/threat-model.md names each attack and the test that shows it fails."""
