

video_idv1(