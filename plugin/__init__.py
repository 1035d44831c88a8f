"""zfsaga.plugin"""
