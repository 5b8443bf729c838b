"""The release format's tests use the shared fixtures of digit_testing.fixtures (a pytest plugin):
held_out_digits, shipped_model_dir, model_copy."""
