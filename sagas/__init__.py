"""zfsaga.sagas"""
