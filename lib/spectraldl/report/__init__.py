"""The report job: candidate catalogue (CSV, VOTable), labelling export, static HTML report."""
