

labels.langzh