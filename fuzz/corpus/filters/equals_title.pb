

title雨中咖啡馆