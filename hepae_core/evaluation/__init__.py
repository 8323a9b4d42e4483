"""What a trained model is measured by: residuals and their widths, the codecs' rates on
the test jets, the baselines shared by a campaign, the rate-distortion curves and the
per-run plots.
"""
