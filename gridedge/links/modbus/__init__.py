"""Modbus links: ``codec`` (pure register decoding and request planning), ``link`` (a meter on a
bus), ``bus`` (the only pymodbus importer), ``settings``, ``scan`` and ``emulator``.
"""
