

width1920