"""Finding the files a recording names: symbol folders, archives, debug files, debuginfod.
"""
