"""The paper's published figures, used only to print the comparison with what the pipeline computed."""
