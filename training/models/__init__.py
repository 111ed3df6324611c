"""Encoders. Exported models return one embedding tensor; heads stay in the losses (DESIGN §4)."""
