"""zfsaga.steps"""
