"""Finding the files a recording names: symbol folders, archives, debug files, debuginfod;
where bee's caches live, and the frames resolved from those files saved there.
"""
